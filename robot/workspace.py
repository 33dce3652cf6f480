"""The SafeReach workspace and the limits every commanded pose must respect.

One place defines the task box, the orientation limit and the per-step limits; the simulator
clips with them and the safety filter (every backend) enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot.geometry import matrix_to_rotvec, rotvec_to_matrix

# Home orientation of the end effector: the Franka Hand pointing straight down, fingers along
# the base y axis (the TCP's z axis = -base z). Pose rotations are measured relative to it.
HOME_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


CONTROL_HZ = 10.0  # the SafeReach control rate (the paper's dataset: 80 steps at 10 Hz)


@dataclass(frozen=True)
class Workspace:
    """Task area on the table (z = 0 is the table top) and the box the TCP must stay inside.

    `safe_low/safe_high` is the hard box for the *measured* TCP. Commands are clipped to that box
    shrunk by the tracking margin (`low/high`), because a compliant arm lags or overshoots its
    equilibrium or is deflected by contacts: measured in simulation under bang-bang actions, up to
    14 mm and 0.1 rad from joint friction against the impedance spring, 21 mm when pressed
    sideways against the fixed target, and 30.3 mm with the hand held on the far side of a target
    at the area's edge (the spring pulls it towards a command inside the target; its body is ~4 cm
    deep). The margin is 4 cm, the command box the task area either way. A target nearer the
    area's edge would hold the hand further out, so a task file whose target ends less than 5 mm
    inside the edge is refused (robot/task_spec.py, TARGET_EDGE_CLEARANCE; the shipped ones end
    6 mm inside; tests/test_sim_world.py drives arbitrary actions into the corners)."""

    area_center: tuple[float, float] = (0.5, 0.0)
    area_size: float = 0.25  # the paper's 25 cm x 25 cm task area
    # commands stay over the 25 cm x 25 cm area itself (z 3.5-13.5 cm); the TCP within 4 cm of it
    safe_low: tuple[float, float, float] = (0.335, -0.165, -0.005)
    safe_high: tuple[float, float, float] = (0.665, 0.165, 0.175)
    tracking_margin: float = 0.04  # m
    # rad, |rotation vector| relative to HOME_ROTATION, for the measured TCP; commands 0.23 rad.
    # The hand turned while pressed against an object measured 0.353 rad (0.123 past the command
    # limit; tests/test_sim_world.py, TURNED_AGAINST_CONTACT): the TCP's limit is 0.40.
    max_tilt: float = 0.40
    tilt_margin: float = 0.17  # rad
    home_position: tuple[float, float, float] = (0.40, 0.0, 0.12)

    @property
    def low(self) -> np.ndarray:
        """Lower corner of the box commands are clipped to."""
        return np.asarray(self.safe_low) + self.tracking_margin

    @property
    def high(self) -> np.ndarray:
        return np.asarray(self.safe_high) - self.tracking_margin

    @property
    def command_tilt(self) -> float:
        return self.max_tilt - self.tilt_margin

    def home_pose(self) -> np.ndarray:
        return np.concatenate([self.home_position, np.zeros(3)])

    def beyond_hard_box(self, measured: np.ndarray) -> str:
        """Empty while the *measured* TCP is inside the hard box (safe_low..safe_high, tilt up
        to max_tilt), else what is out and by how much: the commands never lead there, so the arm
        was pushed, collided or its pose is wrong (arm_controller latches the e-stop)."""
        pose = np.asarray(measured, dtype=np.float64)
        over = np.maximum(np.asarray(self.safe_low) - pose[:3], pose[:3] - self.safe_high)
        out = [f"{'xyz'[i]} {1000 * over[i]:.1f} mm" for i in range(3) if over[i] > 0]
        tilt = float(np.linalg.norm(pose[3:]))
        if tilt > self.max_tilt:
            out.append(f"tilt {tilt - self.max_tilt:.3f} rad")
        if not out:
            return ""
        where = np.round(pose[:3], 3).tolist()
        return f"measured TCP at {where} is outside the hard box by {', '.join(out)}"


@dataclass(frozen=True)
class StepLimits:
    """How far one control step may move the commanded pose (a 6-D action of 1 maps to these)."""

    control_hz: float = CONTROL_HZ
    max_translation: float = 0.02  # m per step along each axis (0.2 m/s at 10 Hz)
    max_rotation: float = 0.08  # rad per step about each axis
    # The commanded pose may lead the measured one by at most this much, so a blocked arm does
    # not wind up a large spring (the impedance controller would release it as a jump).
    max_lead_translation: float = 0.03
    max_lead_rotation: float = 0.15


@dataclass(frozen=True)
class ControlLimits:
    workspace: Workspace = field(default_factory=Workspace)
    step: StepLimits = field(default_factory=StepLimits)

    def action_to_delta(self, action: np.ndarray) -> np.ndarray:
        """Scale a 6-D action in [-1, 1] (clipped) to a pose delta (xyz m, rotation vector rad)."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        scale = np.array([self.step.max_translation] * 3 + [self.step.max_rotation] * 3)
        return a * scale

    def clip_pose(self, pose: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Clip a pose [xyz, rotvec] to the command box and tilt limit and, given the measured
        `reference` pose, to the maximum lead over it. Always returns a valid pose."""
        pose = np.asarray(pose, dtype=np.float64).copy()
        if reference is not None:
            pose[:3] = reference[:3] + _clip_norm(
                pose[:3] - reference[:3], self.step.max_lead_translation
            )
            rel = matrix_to_rotvec(rotvec_to_matrix(pose[3:]) @ rotvec_to_matrix(reference[3:]).T)
            rel = _clip_norm(rel, self.step.max_lead_rotation)
            pose[3:] = matrix_to_rotvec(rotvec_to_matrix(rel) @ rotvec_to_matrix(reference[3:]))
        pose[:3] = np.clip(pose[:3], self.workspace.low, self.workspace.high)
        pose[3:] = _clip_norm(pose[3:], self.workspace.command_tilt)
        return pose

    def apply_delta(self, pose: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """pose (+) delta: translation added, rotation composed in the base frame."""
        out = np.empty(6)
        out[:3] = pose[:3] + delta[:3]
        out[3:] = matrix_to_rotvec(rotvec_to_matrix(delta[3:]) @ rotvec_to_matrix(pose[3:]))
        return out


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v if norm <= limit else v * (limit / norm)
