"""SafeReach task variants as data: one TOML file per variant under robot/tasks/.

A new variant needs a new file, not new code. `load_task("unseen-3")` reads a packaged variant;
`load_task("path/to/my.toml")` reads any file. Layouts are drawn deterministically from a seed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot.workspace import Workspace

# the first layout seed of every evaluation (fosp eval, Table 3, the demo): one fixed set of
# test layouts, so that results of different runs compare
TEST_LAYOUT_SEED = 10_000

TASK_DIR = Path(__file__).parent / "tasks"
SHAPE_SIZES = {"box": 3, "cylinder": 2}
# how far inside the task area's edge the target's footprint must end (any jitter, any yaw). The
# hand held on the far side of a target 6 mm from the edge (the shipped variants) measured 30.3 mm
# beyond the command box; a target nearer the edge moves that hold out one for one, and the
# measured-TCP box allows 40 mm (robot/workspace.py). Obstacles only have to lie in the area.
TARGET_EDGE_CLEARANCE = 0.005  # m


class TaskSpecError(ValueError):
    """A task file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]
    placements: tuple[tuple[float, float], ...]
    mass: float = 0.0  # 0: static (the target)

    @property
    def half_height(self) -> float:
        return self.size[-1]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    target: ObjectSpec
    obstacles: ObjectSpec
    obstacle_count: int
    position_jitter: float
    yaw_jitter: float  # rad
    source: str

    def sample_layout(self, seed: int) -> Layout:
        """The layout for `seed`: same seed, same layout, on every machine."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5AFE]))
        t = int(rng.integers(len(self.target.placements)))
        idx = rng.choice(len(self.obstacles.placements), self.obstacle_count, replace=False)
        jitter = rng.uniform(
            -self.position_jitter, self.position_jitter, (self.obstacle_count + 1, 2)
        )
        yaw = rng.uniform(-self.yaw_jitter, self.yaw_jitter, self.obstacle_count + 1)
        target_xy = np.asarray(self.target.placements[t]) + jitter[0]
        obstacle_xy = np.asarray([self.obstacles.placements[i] for i in idx]) + jitter[1:]
        return Layout(
            task=self.name,
            seed=int(seed),
            target_index=t,
            obstacle_indices=tuple(int(i) for i in idx),
            target_xy=target_xy,
            target_yaw=float(yaw[0]),
            obstacle_xy=obstacle_xy,
            obstacle_yaw=yaw[1:].copy(),
        )


@dataclass(frozen=True)
class Layout:
    task: str
    seed: int
    target_index: int
    obstacle_indices: tuple[int, ...]
    target_xy: np.ndarray
    target_yaw: float
    obstacle_xy: np.ndarray  # (n, 2)
    obstacle_yaw: np.ndarray  # (n,)


def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.toml"))


def load_task(name_or_path: str | Path) -> TaskSpec:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TASK_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise TaskSpecError(
                f"unknown task {name_or_path!r}; packaged tasks: {', '.join(available_tasks())}"
            )
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise TaskSpecError(f"{path}: cannot read task file: {err}") from err
    return _parse(raw, path)


def _parse(raw: dict, path: Path) -> TaskSpec:
    def need(table: dict, key: str, where: str):
        if key not in table:
            raise TaskSpecError(f"{path}: missing field {where}{key}")
        return table[key]

    def obj(table: dict, where: str, movable: bool) -> ObjectSpec:
        shape = need(table, "shape", where)
        if shape not in SHAPE_SIZES:
            raise TaskSpecError(f"{path}: {where}shape must be one of {sorted(SHAPE_SIZES)}")
        size = tuple(float(s) for s in need(table, "size", where))
        if len(size) != SHAPE_SIZES[shape] or min(size) <= 0:
            raise TaskSpecError(
                f"{path}: {where}size needs {SHAPE_SIZES[shape]} positive numbers for a {shape}"
            )
        rgba = tuple(float(c) for c in need(table, "rgba", where))
        if len(rgba) != 4:
            raise TaskSpecError(f"{path}: {where}rgba needs 4 numbers")
        placements = tuple((float(x), float(y)) for x, y in need(table, "placements", where))
        if not placements:
            raise TaskSpecError(f"{path}: {where}placements is empty")
        mass = float(need(table, "mass", where)) if movable else 0.0
        if movable and mass <= 0:
            raise TaskSpecError(f"{path}: {where}mass must be positive")
        return ObjectSpec(shape, size, rgba, placements, mass)

    target = obj(need(raw, "target", ""), "target.", movable=False)
    obstacles_table = need(raw, "obstacles", "")
    obstacles = obj(obstacles_table, "obstacles.", movable=True)
    count = int(need(obstacles_table, "count", "obstacles."))
    if not 0 <= count <= len(obstacles.placements):
        raise TaskSpecError(f"{path}: obstacles.count must be between 0 and the placement count")
    layout = raw.get("layout", {})
    spec = TaskSpec(
        name=str(need(raw, "name", "")),
        description=str(raw.get("description", "")),
        target=target,
        obstacles=obstacles,
        obstacle_count=count,
        position_jitter=float(layout.get("position_jitter", 0.0)),
        yaw_jitter=float(np.deg2rad(layout.get("yaw_jitter_deg", 0.0))),
        source=str(path),
    )
    if spec.position_jitter < 0 or not 0 <= spec.yaw_jitter <= np.pi / 2:
        raise TaskSpecError(
            f"{path}: layout.position_jitter must be >= 0 and layout.yaw_jitter_deg in [0, 90]"
        )
    for where, item, clearance in (
        ("target", spec.target, TARGET_EDGE_CLEARANCE),
        ("obstacles", spec.obstacles, 0.0),
    ):
        _check_in_area(item, where, clearance, spec, path)
    return spec


def footprint_reach(item: ObjectSpec, yaw_jitter: float) -> np.ndarray:
    """How far (x, y, metres) an object reaches from its centre at any yaw within +-yaw_jitter."""
    if item.shape == "cylinder":
        return np.full(2, item.size[0])
    half = np.asarray(item.size[:2])
    # hx cos(t) + hy sin(t) rises with t until t = atan2(hy, hx) (the half diagonal): the reach
    # is at the smaller of that angle and the jitter
    reach = []
    for a, b in (half, half[::-1]):
        t = min(yaw_jitter, np.arctan2(b, a))
        reach.append(a * np.cos(t) + b * np.sin(t))
    return np.asarray(reach)


def _check_in_area(
    item: ObjectSpec, where: str, clearance: float, spec: TaskSpec, path: Path
) -> None:
    """Every placement, jittered and turned as far as the layout allows, inside the task area
    (less `clearance`); else a TaskSpecError naming the placement and how far out it reaches."""
    ws = Workspace()
    center, half = np.asarray(ws.area_center), ws.area_size / 2 - clearance
    reach = footprint_reach(item, spec.yaw_jitter) + spec.position_jitter
    for i, xy in enumerate(item.placements):
        beyond = np.abs(np.asarray(xy) - center) + reach - half
        if beyond.max() > 1e-9:
            edge = f"{clearance * 100:g} cm inside the edge of" if clearance else "inside"
            raise TaskSpecError(
                f"{path}: {where}.placements[{i}] = {list(xy)} reaches {beyond.max() * 1000:.1f} "
                f"mm too far (its size, layout.position_jitter and yaw_jitter_deg included): "
                f"the {where} must end {edge} the {ws.area_size * 100:g} cm task area around "
                f"{list(ws.area_center)}"
            )
