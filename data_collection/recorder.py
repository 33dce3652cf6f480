"""`fosp collect`: teleoperated episodes with live manual labels, reviewed before they are kept.

The loop per episode (LeRobot's record flow, on our episode format):

    reset (a new layout) -> countdown -> `steps` control steps at the control rate -> review
    review: keep (k/Enter) -> written atomically | discard (d) -> gone, next layout |
            re-record (r/Backspace) -> gone, same layout again | quit (q/Esc) -> gone, stop

Nothing touches the dataset folder until an episode is kept, and then only through
`Dataset.add` (temporary name + fsync + rename), so Esc, Ctrl-C, a dropped SpaceMouse, a stale
ROS observation or a crash lose at most the episode in progress and never damage a saved one.

The operator's stop wins (over ROS): an e-stop, a hold asked for by someone else, or a reflex
during a recording ends it at once. The take is stored marked (`status: "aborted"`,
`interrupted: "estop" | "hold" | "reflex"`) in `<out>/interrupted/`, which is not part of the
dataset (nothing trains on it unless the operator moves it there), and the window says so and
waits for the operator's release: key `y` (RELEASE_KEYS) calls the arm's release_estop service,
as `rosservice call /fosp/release_estop` from a terminal does; q/Esc stops the session. Then the
same layout is recorded again. The collector never releases by itself, and a reset refused
while the e-stop is latched waits for the release the same way.

Labels (source "manual"): each row gets the operator's label state when its observation arrives
(data_collection.teleop.labels). When the environment knows the truth (the simulator, in-process
or over ROS) it is stored beside the labels as oracle_reward / oracle_cost, so label quality can
be measured; on the real arm there is none.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_collection.dataset import Dataset
from data_collection.episode import Episode, EpisodeBuilder, category_name, now_iso
from data_collection.rollout import Step, rollout
from data_collection.teleop import draw
from data_collection.teleop.base import Clock, LabelEvent, RealClock, Teleop, TeleopError
from data_collection.teleop.labels import LiveLabels
from data_collection.teleop.window import OperatorUI
from fosp.config_flags import option
from robot.errors import ArmStopped, StaleObservationError

# recording phase (motion keys belong to the keyboard teleop, see teleop/keyboard.py)
LABEL_KEYS = {"c": ("cost", "toggle"), "t": ("reward", "toggle"), "g": ("reward", "mark")}
ABORT_KEYS = {"esc": "quit", "q": "quit", "backspace": "rerecord"}
# review phase
REVIEW_KEYS = {
    "k": "keep",
    "enter": "keep",
    "d": "discard",
    "x": "discard",
    "r": "rerecord",
    "backspace": "rerecord",
    "q": "quit",
    "esc": "quit",
}
RECORD_HELP = (
    "c: cost on/off   t: reward on/off   g: reward this step",
    "Backspace: re-record   Esc/q: stop (episode dropped)",
)
REVIEW_HELP = (
    "k/Enter: keep   d: discard   r/Backspace: re-record",
    "q/Esc: quit (this one not saved)   <- ->: scrub",
)
# stopped phase (the arm was e-stopped, held or hit a reflex): the operator's explicit release
RELEASE_KEYS = ("y",)
STOPPED_HELP = "y: release the stop (after checking the arm)   q/Esc: quit"
INTERRUPTED_DIR = "interrupted"  # <out>/interrupted: stopped takes, not part of the dataset
SCALE = 6  # 64 px observation -> 384 px on screen
MAX_STALE = 3  # recordings in a row lost to stale observations before the session stops
WIDTH, HEIGHT = 720, 500


@dataclass
class CollectConfig:
    """One teleoperation session; its fields (but `pace`, `env_kind`) are `fosp collect` flags."""

    task: str = option("train", check="task")  # SafeReach task variant (ROS: the launch's)
    episodes: int = option(10, check="positive")  # episodes to keep in this session
    countdown: float = option(3.0, check="non_negative")  # seconds before each episode
    pace: bool = True  # wait for the control period (in-process sim; the ROS env paces itself)
    seed: int | None = option(None, check="seed", shown_default="fresh entropy")  # layout seeds
    operator: str = option("", shown_default="none")  # who is teleoperating (stored per episode)
    env_kind: str = "sim"
    max_attempts: int = option(1000, check="positive")  # recordings (kept or not) before giving up


@dataclass
class View:
    """What the operator window shows (and what a scripted operator gets to see)."""

    phase: str  # "countdown" | "record" | "review" | "stopped" (waiting for the release)
    episode: int  # 1-based slot being recorded
    kept: int
    target: int
    step: int = 0
    steps: int = 80
    obs: dict[str, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    action: np.ndarray = field(default_factory=lambda: np.zeros(6, np.float32))
    labels: tuple[float, float] = (0.0, 0.0)  # (reward, cost) state now
    reward: np.ndarray | None = None  # label tracks so far (rows)
    cost: np.ndarray | None = None
    oracle_reward: np.ndarray | None = None
    oracle_cost: np.ndarray | None = None
    countdown: float = 0.0
    category: str = ""
    oracle_category: str = ""
    teleop: str = ""
    layout_seed: int = 0
    message: str = ""


@dataclass
class CollectResult:
    kept: list[str] = field(default_factory=list)  # file names
    discarded: int = 0
    rerecorded: int = 0
    aborted: int = 0
    quit: bool = False


class _Abort(Exception):
    def __init__(self, why: str):
        self.why = why


class Recorder:
    def __init__(
        self,
        env,
        teleop: Teleop,
        ui: OperatorUI,
        dataset: Dataset,
        config: CollectConfig,
        clock: Clock | None = None,
        log: Callable[[str], None] = print,
    ):
        self.env, self.teleop, self.ui, self.dataset = env, teleop, ui, dataset
        self.config, self.clock, self.log = config, clock or RealClock(), log
        self.labels = LiveLabels()
        self._stale = 0  # consecutive recordings lost to stale observations
        self.period = 1.0 / float(env.metadata.get("render_fps", 10))
        self.steps = int(getattr(env, "episode_steps", None) or env.config.episode_steps)

    # ------------------------------------------------------------------ session
    def run(self) -> CollectResult:
        cfg = self.config
        result = CollectResult()
        existing = len(self.dataset)
        entropy = cfg.seed if cfg.seed is not None else secrets.randbits(64)
        rng = np.random.default_rng(np.random.SeedSequence([entropy, existing]))
        layout_seed = int(rng.integers(2**31 - 1))
        attempts = 0
        while len(result.kept) < cfg.episodes and attempts < cfg.max_attempts:
            attempts += 1
            slot = len(result.kept) + 1
            try:
                episode = self.record(layout_seed, slot, len(result.kept))
                decision = self.review(episode, slot, len(result.kept))
            except _Abort as abort:
                decision = abort.why
                episode = None
                result.aborted += 1
            if decision == "keep":
                path = self.dataset.add(episode)
                result.kept.append(path.name)
                self.log(
                    f"kept {path.name} ({episode.category}) [{len(result.kept)}/{cfg.episodes}]"
                )
            elif decision == "quit":
                result.quit = True
                self.log("stopped by the operator; the episode in progress was not saved")
                break
            elif decision == "rerecord":
                result.rerecorded += 1
                self.log(f"re-recording layout {layout_seed}")
                continue  # same layout
            else:
                result.discarded += 1
                self.log("discarded")
            layout_seed = int(rng.integers(2**31 - 1))
        return result

    # ------------------------------------------------------------------ one recording
    def record(self, layout_seed: int, slot: int, kept: int) -> Episode:
        cfg = self.config
        base = View(
            "countdown", slot, kept, cfg.episodes, steps=self.steps, teleop=self.teleop.name
        )
        base.layout_seed = layout_seed
        builder = EpisodeBuilder(self._metadata(layout_seed))
        # what the operator's frame shows: the last step's info and action, the pacing deadline
        last_info: dict = {}
        last_action = np.zeros(6, np.float32)
        deadline = 0.0
        missing = 0  # rows whose truth did not arrive (a label message missed its step)

        def get_ready(obs: dict, info: dict) -> None:
            nonlocal last_info, deadline
            self.teleop.reset()
            self.teleop.events()  # presses from before the episode belong to no row
            self.labels.reset()
            self._countdown(base, obs)
            builder.metadata["started_at"] = now_iso()  # the recording starts now
            last_info, deadline = info, self.clock.now()

        def operator(obs: dict) -> np.ndarray:
            nonlocal last_action, deadline
            i = builder.num_actions
            view = dataclasses.replace(
                base,
                phase="record",
                step=i,
                obs=obs,
                info=last_info,
                action=last_action,
                labels=(float(self.labels.state["reward"]), float(self.labels.state["cost"])),
                reward=builder.column("reward"),
                cost=builder.column("cost"),
                oracle_reward=builder.column("oracle_reward"),
                oracle_cost=builder.column("oracle_cost"),
            )
            self.ui.show(render_record(view), view)
            wait = deadline - self.clock.now() if cfg.pace else 0.0
            for key in self.ui.keys(max(0.001, wait)):
                self._record_key(key, row=i + 1)
            deadline = max(deadline, self.clock.now()) + self.period
            last_action = np.asarray(self.teleop.action(), np.float32)
            return last_action

        def live_labels(step: Step) -> tuple[float, float]:
            nonlocal last_info, missing
            for event in self.teleop.events():
                self.labels.apply(event, row=step.row)
            last_info = step.info
            missing += step.truth is None
            return self.labels.close_row()

        def operator_stop(step: Step) -> str:
            return step.info.get("interrupted") or ("estop" if step.info.get("estopped") else "")

        try:
            result = rollout(
                self.env, operator, builder.metadata, options={"layout_seed": layout_seed},
                on_reset=get_ready, on_step=operator_stop, label=live_labels,
                max_steps=self.steps, builder=builder,
            )  # fmt: skip
        except ArmStopped as err:  # the ROS env: reset refused (e-stop latched)
            self.log(str(err))
            self._wait_for_release(err.stamp, "e-stop latched", base)
            raise _Abort("rerecord") from err
        except StaleObservationError as err:  # the ROS env: no fresh observation in time
            self._stale += 1
            if self._stale > MAX_STALE:
                raise
            self.log(f"{err}\nepisode dropped; recording this layout again")
            raise _Abort("rerecord") from err
        episode = result.episode
        episode.metadata["label_events"] = self.labels.log
        if result.stop:
            self._store_interrupted(episode)
            self._wait_for_release(float(result.info.get("stop_stamp", 0.0)), result.stop, base)
            raise _Abort("rerecord")  # the same layout again
        if missing and missing < builder.num_actions:
            # over ROS a label message can miss its step: the truth is then incomplete, and
            # an incomplete truth is not stored (it would misjudge the manual labels)
            episode.metadata["oracle_missing_steps"] = missing
        self._stale = 0
        return episode

    def _store_interrupted(self, episode: Episode) -> None:
        """The stopped take, marked (rollout set status, interrupted, interrupted_at_step),
        beside the dataset (never in it)."""
        path = Dataset(self.dataset.root / INTERRUPTED_DIR).add(episode)
        meta = episode.metadata
        self.log(
            f"{meta['interrupted']} during the recording (step {meta['interrupted_at_step']}): "
            f"stopped; stored as interrupted in {path} (not part of the dataset)"
        )

    def _wait_for_release(self, stamp: float, why: str, base: View) -> None:
        """Show the stop and wait for the operator's release (key y here, or the service from a
        terminal); q/Esc quits. Never releases by itself."""
        env = self.env
        message = f"ARM STOPPED ({why}). {STOPPED_HELP}"
        self.log(f"arm stopped ({why}): waiting for the operator's release ({STOPPED_HELP})")
        while not env.released_since(stamp):
            view = dataclasses.replace(base, phase="stopped", message=message)
            self.ui.show(render_record(view), view)
            for key in self.ui.keys(0.1):
                if key in RELEASE_KEYS:
                    ok, text = env.release_estop()
                    self.log(f"release: {text}")
                    message = text if not ok else message
                elif key in ("q", "esc"):
                    raise _Abort("quit")
        self.log("released by the operator: recording this layout again")

    def _countdown(self, base: View, obs) -> None:
        end = self.clock.now() + self.config.countdown
        while True:
            left = end - self.clock.now()
            view = dataclasses.replace(base, obs=obs, countdown=max(0.0, left))
            self.ui.show(render_record(view), view)
            for key in self.ui.keys(min(0.1, max(0.001, left))):
                if key in ABORT_KEYS:
                    raise _Abort(ABORT_KEYS[key])
                # motion keys during the countdown are ignored: the robot starts from rest
            if left <= 0:
                return

    def _record_key(self, key: str, row: int) -> None:
        if key in ABORT_KEYS:
            raise _Abort(ABORT_KEYS[key])
        if key in LABEL_KEYS:
            label, action = LABEL_KEYS[key]
            self.labels.apply(LabelEvent(label, action, self.clock.now(), "keyboard"), row)
            return
        press = getattr(self.teleop, "press", None)
        if press is not None:
            press(key)

    def _metadata(self, layout_seed: int) -> dict[str, Any]:
        env = self.env
        task = getattr(getattr(env, "task", None), "name", None) or self.config.task
        mapping = getattr(getattr(self.teleop, "config", None), "mapping", None)
        return {
            "task": task,
            "layout_seed": int(layout_seed),
            "control_hz": round(1.0 / self.period, 6),
            "label_source": "manual",
            "label_status": "live",
            "env": self.config.env_kind,
            "teleop": self.teleop.name,
            "teleop_mapping": dataclasses.asdict(mapping) if mapping is not None else None,
            "operator": self.config.operator,
            "collector": "fosp collect",
        }

    # ------------------------------------------------------------------ review
    def review(self, episode: Episode, slot: int, kept: int) -> str:
        s = episode.steps
        has_truth = "oracle_reward" in s
        oracle_cat = ""
        if has_truth:
            oracle_cat = category_name(
                safe=not (s["oracle_cost"] > 0).any(), success=bool((s["oracle_reward"] > 0).any())
            )
        cursor = len(episode) - 1
        while True:
            view = View(
                "review",
                slot,
                kept,
                self.config.episodes,
                step=cursor,
                steps=len(episode) - 1,
                obs={"image": s["image"][cursor], "pose": s["pose"][cursor]},
                action=s["action"][max(0, cursor - 1)],
                labels=(float(s["reward"][cursor]), float(s["cost"][cursor])),
                reward=s["reward"],
                cost=s["cost"],
                oracle_reward=s.get("oracle_reward"),
                oracle_cost=s.get("oracle_cost"),
                category=episode.category,
                oracle_category=oracle_cat,
                teleop=self.teleop.name,
                layout_seed=int(episode.metadata["layout_seed"]),
            )
            self.ui.show(render_record(view), view)
            for key in self.ui.keys(0.05):
                if key in REVIEW_KEYS:
                    return REVIEW_KEYS[key]
                if key in ("left", ","):
                    cursor = max(0, cursor - 1)
                elif key in ("right", "."):
                    cursor = min(len(episode) - 1, cursor + 1)
                elif key == "home":
                    cursor = 0
                elif key == "end":
                    cursor = len(episode) - 1


# ---------------------------------------------------------------------- the operator's frame
def render_record(view: View) -> np.ndarray:
    img = draw.canvas(WIDTH, HEIGHT)
    size = 64 * SCALE
    if view.obs is not None:
        draw.camera(img, view.obs["image"], (12, 12), size)
    x = size + 28
    phase = {
        "countdown": f"GET READY {view.countdown:0.1f}",
        "record": "RECORDING",
        "review": "REVIEW",
    }.get(view.phase, view.phase.upper())
    color = {"record": draw.RED, "countdown": draw.YELLOW, "review": draw.CYAN}.get(
        view.phase, draw.WHITE
    )
    draw.text(img, phase, (x, 34), color, 0.7, 2)
    draw.text(img, f"episode {view.episode}/{view.target}  kept {view.kept}", (x, 60))
    draw.text(img, f"step {view.step}/{view.steps}", (x, 84), draw.WHITE, 0.6, 2)
    draw.text(img, f"layout {view.layout_seed}  teleop {view.teleop}", (x, 106), draw.GREY, 0.42)
    draw.badge(img, "COST", (x, 120), view.labels[1] > 0, draw.RED)
    draw.badge(img, "REWARD", (x + 140, 120), view.labels[0] > 0, draw.GREEN)
    draw.action_bars(img, view.action, (x, 160))
    if view.phase == "review":
        draw.text(img, f"labels: {view.category}", (x, 268), draw.WHITE, 0.55, 1)
        if view.oracle_category:
            match = "agrees" if view.oracle_category == view.category else "DIFFERS"
            draw.text(
                img, f"sim truth: {view.oracle_category} ({match})", (x, 290), draw.GREY, 0.45
            )
    help_lines = REVIEW_HELP if view.phase == "review" else RECORD_HELP
    if view.teleop == "keyboard" and view.phase != "review":
        help_lines = ("move: w/s a/d r/f  turn: j/l  stop: space", *help_lines)
    for i, line in enumerate(help_lines):
        draw.text(img, line, (x, 320 + 18 * i), draw.GREY, 0.4)
    if view.message:
        draw.text(img, view.message, (x, 390), draw.YELLOW, 0.45)
    rows = []
    if view.reward is not None:
        rows += [("reward", view.reward, draw.GREEN), ("cost", view.cost, draw.RED)]
    if view.oracle_reward is not None:
        rows += [
            ("sim rew", view.oracle_reward, (40, 110, 40)),
            ("sim cost", view.oracle_cost, (40, 40, 130)),
        ]
    if rows:
        draw.timeline(
            img,
            rows,
            (12, size + 24, WIDTH - 24, HEIGHT - size - 36),
            view.step,
            None,
            view.steps + 1,
        )
    return img


def make_teleop(kind: str, clock: Clock | None = None, **options) -> Teleop:
    """--teleop spacemouse|keyboard -> a started-later Teleop (TeleopError explains failures)."""
    from data_collection.teleop.keyboard import KeyboardConfig, KeyboardTeleop
    from data_collection.teleop.mapping import MappingConfig
    from data_collection.teleop.spacemouse import SpaceMouseConfig, SpaceMouseTeleop

    yaw = options.get("yaw_deg")
    if kind == "spacemouse":
        mapping = MappingConfig(
            **{k: v for k, v in options.items() if k in MappingConfig.__dataclass_fields__}
        )
        cfg = SpaceMouseConfig(
            mapping=mapping,
            device=options.get("device"),
            path=options.get("path"),
            cost_button=options.get("cost_button"),
            reward_button=options.get("reward_button"),
        )
        return SpaceMouseTeleop(cfg, clock)
    if kind == "keyboard":
        base = KeyboardConfig().mapping
        mapping = dataclasses.replace(
            base,
            yaw_deg=base.yaw_deg if yaw is None else yaw,
            lock_rotation=options.get("lock_rotation", False),
        )
        return KeyboardTeleop(KeyboardConfig(mapping=mapping), clock)
    raise TeleopError(f"unknown teleop {kind!r} (spacemouse or keyboard)")
