"""A fake libhidapi-hidraw under easyhid: the only thing replaced is the C library.

easyhid (which pyspacemouse uses) calls `easyhid.easyhid.hidapi.hid_*` through cffi. FakeHidApi
implements those calls with real cffi structures, so enumeration, opening, report reading and
all of pyspacemouse's decoding (device table, axis convention, byte layout, buttons) run
unchanged. A FakeSpaceMouse plays the device: a queue of raw HID reports built from physical
gestures in the HID usage convention (x right, y towards the user, z down; Rx/Ry/Rz right-hand
about those axes; HID Usage Tables section 4.2).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from easyhid import easyhid as _easyhid

ffi = _easyhid.ffi

MODELS = {
    # name: (vendor, product, axis report layout, bytes of an axis report)
    "SpaceMouseCompact": (0x256F, 0xC635, "two-reports"),
    "SpaceMouseWireless": (0x256F, 0xC62E, "one-report"),
}
BUTTON_BITS = {"LEFT": 0, "RIGHT": 1}  # report 3, byte 1 on the Compact and the Wireless


def _int16(v: float) -> bytes:
    return int(np.clip(round(v), -32768, 32767)).to_bytes(2, "little", signed=True)


class FakeSpaceMouse:
    def __init__(self, model: str = "SpaceMouseCompact", path: str = "/dev/hidraw7"):
        self.model = model
        self.vendor_id, self.product_id, self.layout = MODELS[model]
        self.path = path
        self.reports: deque[bytes] = deque()
        self.buttons = 0
        self.opened = 0
        self.closed = 0
        self._cond = threading.Condition()
        self._idle_reads = 0  # reads that found the queue empty since the last push

    # ---------------------------------------------------------------- gestures -> reports
    def push(self, report: bytes) -> None:
        with self._cond:
            self.reports.append(bytes(report))
            self._idle_reads = 0

    def move(
        self,
        right=0.0,
        away=0.0,
        up=0.0,
        tilt_right=0.0,
        tilt_away=0.0,
        twist_ccw=0.0,
        scale=350.0,
    ) -> None:
        """A cap deflection, as fractions of full scale (350 counts), described physically:
        push right / away from you / pull up; tilt_right = right-hand rotation about the 'right'
        axis (the far edge rises), tilt_away = right-hand rotation about the 'away' axis (the top
        leans right), twist_ccw = counter-clockwise seen from above."""
        hid = [
            right * scale,  # X: right
            -away * scale,  # Y: towards the user
            -up * scale,  # Z: down
            tilt_right * scale,  # Rx: about X
            -tilt_away * scale,  # Ry: about Y (towards the user) = minus about 'away'
            -twist_ccw * scale,  # Rz: about Z (down) = minus counter-clockwise from above
        ]
        if self.layout == "two-reports":
            self.push(bytes([1]) + b"".join(_int16(v) for v in hid[:3]))
            self.push(bytes([2]) + b"".join(_int16(v) for v in hid[3:]))
        else:
            self.push(bytes([1]) + b"".join(_int16(v) for v in hid))

    def move_raw(self, counts: list[int]) -> None:
        """Raw HID counts [X, Y, Z, Rx, Ry, Rz]."""
        if self.layout == "two-reports":
            self.push(bytes([1]) + b"".join(_int16(v) for v in counts[:3]))
            self.push(bytes([2]) + b"".join(_int16(v) for v in counts[3:]))
        else:
            self.push(bytes([1]) + b"".join(_int16(v) for v in counts))

    def button(self, name: str, down: bool) -> None:
        bit = 1 << BUTTON_BITS[name]
        self.buttons = (self.buttons | bit) if down else (self.buttons & ~bit)
        self.push(bytes([3, self.buttons]))

    def wait_consumed(self, timeout: float = 5.0) -> None:
        """Until the reader has taken every report and come back for more (so it has processed
        them all)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: not self.reports and self._idle_reads >= 1, timeout)
        if not ok:
            raise TimeoutError(f"the reader did not consume {len(self.reports)} reports")

    # ---------------------------------------------------------------- the device side
    def read(self, size: int) -> bytes:
        with self._cond:
            if self.reports:
                return self.reports.popleft()[:size]
            self._idle_reads += 1
            self._cond.notify_all()
            return b""


class FakeHidApi:
    """The hid_* functions easyhid calls, for a set of fake devices."""

    def __init__(self, devices: list[FakeSpaceMouse], openable: bool = True):
        self.devices = devices
        self.openable = openable
        self._keep: list = []  # cffi objects referenced from C structs must stay alive
        self._handles: dict[int, FakeSpaceMouse] = {}

    def hid_init(self) -> int:
        return 0

    def hid_exit(self) -> int:
        return 0

    def hid_enumerate(self, vendor_id: int, product_id: int):
        matching = [
            d
            for d in self.devices
            if vendor_id in (0, d.vendor_id) and product_id in (0, d.product_id)
        ]
        infos = []
        for dev in matching:
            info = ffi.new("struct hid_device_info *")
            path = ffi.new("char[]", dev.path.encode())
            manufacturer = ffi.new("wchar_t[]", "3Dconnexion")
            product = ffi.new("wchar_t[]", dev.model)
            serial = ffi.new("wchar_t[]", "FAKE0001")
            self._keep += [info, path, manufacturer, product, serial]
            info.path = path
            info.vendor_id, info.product_id = dev.vendor_id, dev.product_id
            info.manufacturer_string, info.product_string = manufacturer, product
            info.serial_number = serial
            info.release_number, info.usage_page, info.usage = 0x0100, 1, 8
            info.interface_number = 0
            infos.append(info)
        for a, b in zip(infos, infos[1:], strict=False):
            a.next = b
        if infos:
            infos[-1].next = ffi.NULL
        return infos[0] if infos else ffi.NULL

    def hid_free_enumeration(self, start) -> None:
        pass

    def hid_open_path(self, path):
        if not self.openable:  # what hidraw gives without permission on /dev/hidraw*
            return ffi.NULL
        for dev in self.devices:
            if dev.path.encode() == (path if isinstance(path, bytes) else ffi.string(path)):
                handle = ffi.new("char[1]")
                self._keep.append(handle)
                self._handles[int(ffi.cast("uintptr_t", handle))] = dev
                dev.opened += 1
                return handle
        return ffi.NULL

    def _dev(self, handle) -> FakeSpaceMouse:
        return self._handles[int(ffi.cast("uintptr_t", handle))]

    def hid_read(self, handle, buf, size: int) -> int:
        data = self._dev(handle).read(size)
        for i, b in enumerate(data):
            buf[i] = b
        return len(data)

    def hid_read_timeout(self, handle, buf, size: int, milliseconds: int) -> int:
        if buf == ffi.NULL:
            return 0
        return self.hid_read(handle, buf, size)

    def hid_set_nonblocking(self, handle, nonblock: int) -> int:
        return 0

    def hid_write(self, handle, data, length: int) -> int:
        return length  # the LED

    def hid_close(self, handle) -> None:
        self._dev(handle).closed += 1

    def hid_error(self, handle):
        return ffi.NULL


def install(monkeypatch, devices: list[FakeSpaceMouse], openable: bool = True) -> FakeHidApi:
    api = FakeHidApi(devices, openable)
    monkeypatch.setattr(_easyhid, "hidapi", api)
    return api
