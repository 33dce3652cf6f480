"""3Dconnexion SpaceMouse through pyspacemouse 2.x, read in a background thread.

pyspacemouse decodes one HID report per `read()` and keeps the newest state; the thread drains
reports as they come (non-blocking reads, a short sleep when there is none), so the recorder
always sees the latest deflection and no button edge is lost. Buttons are bound by name
(pyspacemouse's names from its devices.toml: LEFT/RIGHT on the Compact and Wireless models,
BTN_1.. on the Pro) to labels:

- cost ("touching obstacle"): toggle, each press flips it;
- reward ("touched target"): hold, on while the button is held (a tap marks one step).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from data_collection.teleop.base import Clock, EventQueue, LabelEvent, RealClock, TeleopError
from data_collection.teleop.mapping import AXES, AxisMapper, MappingConfig

UDEV_RULE = (
    'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660", GROUP="plugdev", TAG+="uaccess"\n'
    'KERNEL=="hidraw*", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c6[0-9a-f][0-9a-f]", '
    'MODE="0660", GROUP="plugdev", TAG+="uaccess"'
)
PERMISSION_HELP = (
    "Give your user access to the SpaceMouse's hidraw node: write these lines to "
    "/etc/udev/rules.d/99-spacemouse.rules\n"
    f"{UDEV_RULE}\n"
    "then `sudo udevadm control --reload-rules && sudo udevadm trigger`, add yourself to the "
    "plugdev group (`sudo usermod -aG plugdev $USER`, log in again) and re-plug the device. "
    "Check with `ls -l /dev/hidraw*`. (docs/collecting.md)"
)
LIBRARY_HELP = (
    "The HID library is missing: install it with `sudo apt-get install libhidapi-hidraw0` "
    "(scripts/bootstrap.sh does) and make sure pyspacemouse is installed in .venv."
)
NO_DEVICE_HELP = (
    "No SpaceMouse found. Plug it in (wireless: the receiver) and check `lsusb | grep -i "
    "3dconnexion` (vendor 256f or 046d). If it is listed, check `ls -l /dev/hidraw*`: no hidraw "
    "node means the hid kernel driver did not bind. Or use --teleop keyboard."
)

DEFAULT_BUTTONS = {"cost": ("LEFT", "BTN_1"), "reward": ("RIGHT", "BTN_2")}
LABEL_MODES = {"cost": "toggle", "reward": "hold"}


@dataclass(frozen=True)
class SpaceMouseConfig:
    mapping: MappingConfig = field(default_factory=MappingConfig)
    device: str | None = None  # a pyspacemouse device name, e.g. "SpaceMouseCompact" (None: first)
    path: str | None = None  # or a /dev/hidraw* path
    cost_button: str | None = None  # button names; None: DEFAULT_BUTTONS for the model
    reward_button: str | None = None
    poll_s: float = 0.002  # sleep when no report is pending (the device sends at ~100 Hz)


def _import_pyspacemouse():
    try:
        import pyspacemouse  # its easyhid dlopens libhidapi-hidraw at import
    except (ImportError, OSError) as err:
        raise TeleopError(f"{LIBRARY_HELP} ({type(err).__name__}: {err})") from err
    return pyspacemouse


def open_device(config: SpaceMouseConfig):
    """pyspacemouse.open with our axis convention; failures become TeleopError with advice."""
    psm = _import_pyspacemouse()
    convention = psm.AxisConvention.HID_Z_UP
    try:
        if config.path:
            return psm.open_by_path(config.path, axis_convention=convention)
        return psm.open(device=config.device, axis_convention=convention)
    except FileNotFoundError as err:
        raise TeleopError(f"{err}. {NO_DEVICE_HELP}") from err
    except ValueError as err:  # unknown device name / unsupported VID:PID
        raise TeleopError(str(err)) from err
    except RuntimeError as err:
        text = str(err)
        if "Failed to open" in text:  # hid_open_path failed: almost always permissions
            raise TeleopError(
                f"The SpaceMouse was found but cannot be opened. {PERMISSION_HELP}"
            ) from err
        if "HID API" in text:
            raise TeleopError(LIBRARY_HELP) from err
        raise TeleopError(f"{text} {NO_DEVICE_HELP}") from err
    except OSError as err:
        raise TeleopError(f"{LIBRARY_HELP} ({err})") from err


class SpaceMouseTeleop:
    name = "spacemouse"

    def __init__(self, config: SpaceMouseConfig | None = None, clock: Clock | None = None):
        self.config = config or SpaceMouseConfig()
        self.clock = clock or RealClock()
        self.mapper = AxisMapper(self.config.mapping)
        self._lock = threading.Lock()
        self._device_axes = np.zeros(6)
        self._buttons: list[int] = []
        self._bindings: dict[int, str] = {}
        self._events = EventQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._dev = None
        self._last_t = -1.0  # pyspacemouse's initial state.t
        self.reports = 0  # HID reports decoded (diagnostics, tests)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._dev = open_device(self.config)
        self._bindings = self._resolve_buttons(tuple(self._dev.info.button_names))
        self._buttons = [0] * len(self._dev.info.button_names)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="spacemouse", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._dev is not None:
            self._dev.close()
            self._dev = None

    def __enter__(self) -> SpaceMouseTeleop:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def bindings(self) -> dict[str, str]:
        """label -> button name, as resolved for the connected model."""
        names = self._dev.info.button_names if self._dev else ()
        return {label: names[i] for i, label in self._bindings.items()}

    def _resolve_buttons(self, names: tuple[str, ...]) -> dict[int, str]:
        wanted = {"cost": self.config.cost_button, "reward": self.config.reward_button}
        out: dict[int, str] = {}
        for label, name in wanted.items():
            candidates = (name,) if name else DEFAULT_BUTTONS[label]
            found = [c for c in candidates if c in names]
            if not found:
                if name:  # asked for explicitly: say what exists
                    raise TeleopError(f"no button {name!r} on this SpaceMouse; it has {names}")
                continue  # a model without buttons: labels from the keyboard only
            out[names.index(found[0])] = label
        return out

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                state = self._dev.read()
                if state.t != self._last_t:  # read() decoded a report (it stamps each one)
                    self._last_t = state.t
                    self._ingest(state)
                    continue  # drain everything pending before sleeping
                self._stop.wait(self.config.poll_s)
        except BaseException as err:  # a device unplugged mid-episode: action() reports it
            self._error = err

    def _ingest(self, state) -> None:
        now = self.clock.now()
        axes = np.array([getattr(state, a) for a in AXES], dtype=np.float64)
        buttons = list(state.buttons)
        with self._lock:
            self._device_axes = axes
            previous, self._buttons = self._buttons, buttons
            self.reports += 1
        for index, label in self._bindings.items():
            was = previous[index] if index < len(previous) else 0
            if buttons[index] == was:
                continue
            if LABEL_MODES[label] == "toggle":
                if buttons[index]:
                    self._events.put(LabelEvent(label, "toggle", now, "spacemouse"))
            else:
                action = "on" if buttons[index] else "off"
                self._events.put(LabelEvent(label, action, now, "spacemouse"))

    # ------------------------------------------------------------------ Teleop API
    def _check(self) -> None:
        if self._error is not None:
            raise TeleopError(f"SpaceMouse reader stopped: {self._error!r}") from self._error
        if self._dev is None:
            raise TeleopError("SpaceMouseTeleop not started")

    def device_axes(self) -> np.ndarray:
        """The newest device reading [x, y, z, roll, pitch, yaw] (HID_Z_UP, unfiltered)."""
        self._check()
        with self._lock:
            return self._device_axes.copy()

    def action(self) -> np.ndarray:
        return self.mapper(self.device_axes())

    def events(self) -> list[LabelEvent]:
        self._check()
        return self._events.drain()

    def reset(self) -> None:
        self.mapper.reset()
