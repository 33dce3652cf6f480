"""SafeReachSim: the simulated arm, its compliant Cartesian controller and ground-truth labels.

Control like the real arm under franka_ros's Cartesian impedance controller: each control step
moves an equilibrium pose by a clipped delta; a torque-level impedance law (tau = J^T (K e - D v)
plus a null-space posture term, gravity compensated by the model) pulls the hand towards it, so
the hand pushes obstacles instead of passing through them. Physics is sub-stepped at 2 ms.

Ground-truth labels per control step t (the step that executes action t), from contacts and
obstacle speeds sampled at every controller tick (4 ms, 25 ticks per step):
- cost_t = 1 if any obstacle was "disturbed" during the step: from the first robot contact until
  the obstacle is at rest again (the paper's labeling rule, App. D.1 Fig. 9). "At rest" means a
  whole control step in which the obstacle stayed below both rest thresholds (rest_linear_speed,
  rest_angular_speed) at every controller tick: one slow instant of a tumbling box is not rest.
  That step still counts (it is the step in which it comes to rest), so cost ends with it. A
  touch that does not move it costs that one step. An obstacle hit by a disturbed obstacle is
  disturbed too (the arm set it moving), as a person would label.
- reward_t = 1 if the robot touched the target during the step.
StepLabels.ticks holds that per-tick truth, so the rule can be checked from outside.
"""

from __future__ import annotations

import atexit
import functools
import weakref
from dataclasses import dataclass, field

import mujoco
import numpy as np

from robot.geometry import matrix_to_rotvec, rotvec_to_matrix
from robot.sim.scene import READY_QPOS, build_scene_xml, layout_poses
from robot.task_spec import Layout, TaskSpec
from robot.workspace import HOME_ROTATION, ControlLimits

ARM_DOF = 7
KIND_OTHER, KIND_ROBOT, KIND_TARGET, KIND_OBSTACLE = 0, 1, 2, 3


@dataclass(frozen=True)
class ImpedanceGains:
    translational_stiffness: float = 1000.0  # N/m
    rotational_stiffness: float = 40.0  # N m/rad
    translational_damping: float = 80.0  # N s/m
    rotational_damping: float = 2.5  # N m s/rad
    nullspace_stiffness: float = 5.0  # N m/rad towards the home posture
    nullspace_damping: float = 1.0


@dataclass(frozen=True)
class SimConfig:
    limits: ControlLimits = field(default_factory=ControlLimits)
    gains: ImpedanceGains = field(default_factory=ImpedanceGains)
    physics_dt: float = 0.002
    controller_every: int = 2  # physics steps per torque update (250 Hz)
    image_size: int = 64
    rest_linear_speed: float = 0.01  # m/s: an obstacle slower than this ...
    rest_angular_speed: float = 0.15  # rad/s: ... and turning slower than this is at rest
    settle_time: float = 0.2  # s of physics after placing objects at reset

    @property
    def substeps(self) -> int:
        """Physics steps per control step (50 at 10 Hz)."""
        return round(1.0 / (self.limits.step.control_hz * self.physics_dt))


@functools.lru_cache(maxsize=16)
def _compiled_model(xml: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(xml)


@dataclass
class TickRecord:
    """The truth of one control step at each controller tick k (sampled after the tick)."""

    touched: np.ndarray  # (ticks, n) bool: robot in contact with obstacle i
    knocks: np.ndarray  # (ticks, n, n) bool, symmetric: obstacles i and j in contact
    linear_speed: np.ndarray  # (ticks, n) m/s of obstacle i
    angular_speed: np.ndarray  # (ticks, n) rad/s of obstacle i
    contact_force: np.ndarray  # (ticks,) N: normal force of every robot-obstacle contact, summed


@dataclass
class StepLabels:
    reward: float
    cost: float
    touched_target: bool
    touched_obstacles: np.ndarray  # (n,) bool: robot contact with obstacle i during the step
    disturbed_obstacles: np.ndarray  # (n,) bool: obstacle i counted as disturbed this step
    at_rest: np.ndarray  # (n,) bool: obstacle i below the rest thresholds at every tick
    ticks: TickRecord | None = None  # per-tick truth (see TickRecord)
    # N: the largest robot-obstacle contact force of the step (what a Panda's external force
    # estimate would show; the stand-in for franka's O_F_ext_hat_K in the simulated world)
    contact_force: float = 0.0


class SafeReachSim:
    """The MuJoCo SafeReach world. Not a gymnasium env (see robot.env.SafeReachEnv)."""

    def __init__(self, task: TaskSpec, config: SimConfig | None = None):
        self.task = task
        self.config = config or SimConfig()
        self.limits = self.config.limits
        self.model = _compiled_model(build_scene_xml(task, self.limits.workspace))
        self.model.opt.timestep = self.config.physics_dt
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._tcp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._target_mocap = m.body_mocapid[
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "target")
        ]
        self.n_obstacles = task.obstacle_count
        self._obstacle_bodies = np.array(
            [
                mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"obstacle{i}")
                for i in range(self.n_obstacles)
            ],
            dtype=int,
        )
        self._obstacle_qpos = np.array(
            [m.jnt_qposadr[m.body_jntadr[b]] for b in self._obstacle_bodies], dtype=int
        )
        self._obstacle_qvel = np.array(
            [m.jnt_dofadr[m.body_jntadr[b]] for b in self._obstacle_bodies], dtype=int
        )
        # (n, 6) qvel indices of the obstacles' free joints: linear, then angular velocity
        self._obstacle_dofs = self._obstacle_qvel.reshape(-1, 1) + np.arange(6)
        # geom id -> (kind, obstacle index) for fast contact classification
        self._geom_kind = np.full(m.ngeom, KIND_OTHER, dtype=int)
        self._geom_obstacle = np.full(m.ngeom, -1, dtype=int)
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name.startswith("robot_"):
                self._geom_kind[g] = KIND_ROBOT
            elif name == "target":
                self._geom_kind[g] = KIND_TARGET
            elif name.startswith("obstacle"):
                self._geom_kind[g] = KIND_OBSTACLE
                self._geom_obstacle[g] = int(name.removeprefix("obstacle"))
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._home_qpos = self._solve_home_qpos()
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.layout: Layout | None = None
        self.commanded_pose = self.limits.workspace.home_pose()
        self._disturbed = np.zeros(self.n_obstacles, dtype=bool)
        self.touched_by_robot = np.zeros(self.n_obstacles, dtype=bool)  # ever, this episode
        self.disturbed_by_robot = np.zeros(self.n_obstacles, dtype=bool)  # directly or in a chain
        self.last_labels: StepLabels | None = None  # of the latest step, with its TickRecord

    # ----------------------------------------------------------------- state
    def tcp_pose(self) -> np.ndarray:
        """[x, y, z, rotation vector relative to the home orientation] in the base frame."""
        pos = self.data.site_xpos[self._tcp].copy()
        rot = self.data.site_xmat[self._tcp].reshape(3, 3)
        return np.concatenate([pos, matrix_to_rotvec(rot @ HOME_ROTATION.T)])

    def obstacle_positions(self) -> np.ndarray:
        return np.array([self.data.xpos[b] for b in self._obstacle_bodies]).reshape(-1, 3)

    def obstacle_clearance(self, distmax: float = 0.1) -> float:
        """Smallest distance (m) between the robot and any obstacle now; `distmax` when none is
        nearer (the ground truth a simulated operator watches; negative while penetrating)."""
        m, d = self.model, self.data
        robot = np.flatnonzero(self._geom_kind == KIND_ROBOT)
        obstacles = np.flatnonzero(self._geom_kind == KIND_OBSTACLE)
        best = float(distmax)
        for g1 in obstacles:
            for g2 in robot:
                best = min(best, float(mujoco.mj_geomDistance(m, d, int(g1), int(g2), best, None)))
        return best

    def obstacle_speeds(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear (m/s) and angular (rad/s) speed of each obstacle now."""
        qv = self.data.qvel[self._obstacle_dofs]
        return np.linalg.norm(qv[:, :3], axis=1), np.linalg.norm(qv[:, 3:], axis=1)

    # ----------------------------------------------------------------- episode
    def reset(self, layout: Layout) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.layout = layout
        poses = layout_poses(self.task, layout)
        d.mocap_pos[self._target_mocap] = poses["target_pos"]
        d.mocap_quat[self._target_mocap] = poses["target_quat"]
        for i, adr in enumerate(self._obstacle_qpos):
            d.qpos[adr : adr + 3] = poses["obstacle_pos"][i]
            d.qpos[adr + 3 : adr + 7] = poses["obstacle_quat"][i]
        d.qpos[:ARM_DOF] = self._home_qpos
        mujoco.mj_forward(m, d)
        self.commanded_pose = self.limits.workspace.home_pose()
        settle_ticks = self.config.settle_time / (
            self.config.physics_dt * self.config.controller_every
        )
        home_rot = rotvec_to_matrix(self.commanded_pose[3:]) @ HOME_ROTATION
        for _ in range(round(settle_ticks)):
            self._control_tick(self.commanded_pose[:3], home_rot, np.zeros(6))
        self._disturbed[:] = False
        self.touched_by_robot[:] = False
        self.disturbed_by_robot[:] = False
        self.last_labels = None

    def step(self, action: np.ndarray) -> StepLabels:
        """Execute one control step: move the equilibrium pose by the scaled action (clipped to
        the task box, tilt and per-step limits), track it for 1/control_hz seconds."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (6,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 6 finite numbers, got {action!r}")
        delta = self.limits.action_to_delta(action)
        proposed = self.limits.apply_delta(self.commanded_pose, delta)
        return self.step_to(self.limits.clip_pose(proposed, reference=self.tcp_pose()))

    # ----------------------------------------------------------------- control
    def _control_tick(
        self, equilibrium_pos: np.ndarray, equilibrium_rot: np.ndarray, velocity: np.ndarray
    ) -> None:
        """One torque update of the impedance law, held for `controller_every` physics steps."""
        m, d, g = self.model, self.data, self.config.gains
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._tcp)
        jac = np.vstack([self._jacp[:, :ARM_DOF], self._jacr[:, :ARM_DOF]])
        qvel = d.qvel[:ARM_DOF]
        pose_err = np.empty(6)
        pose_err[:3] = equilibrium_pos - d.site_xpos[self._tcp]
        pose_err[3:] = matrix_to_rotvec(equilibrium_rot @ d.site_xmat[self._tcp].reshape(3, 3).T)
        twist = jac @ qvel - velocity
        wrench = np.empty(6)
        wrench[:3] = g.translational_stiffness * pose_err[:3] - g.translational_damping * twist[:3]
        wrench[3:] = g.rotational_stiffness * pose_err[3:] - g.rotational_damping * twist[3:]
        # null space: keep the elbow near the home posture without disturbing the hand
        jac_pinv = jac.T @ np.linalg.inv(jac @ jac.T + 1e-4 * np.eye(6))
        posture = (
            g.nullspace_stiffness * (self._home_qpos - d.qpos[:ARM_DOF])
            - g.nullspace_damping * qvel
        )
        tau = jac.T @ wrench + (np.eye(ARM_DOF) - jac.T @ jac_pinv.T) @ posture
        d.ctrl[:ARM_DOF] = tau  # clipped to the torque limits by the actuators' ctrlrange
        mujoco.mj_step(m, d, nstep=self.config.controller_every)

    def _contacts(self) -> tuple[bool, np.ndarray, list[tuple[int, int]]]:
        """Robot-target contact, robot-obstacle contacts, obstacle-obstacle pairs in contact."""
        touched = np.zeros(self.n_obstacles, dtype=bool)
        n = self.data.ncon
        if n == 0:
            return False, touched, []
        pairs = self.data.contact.geom[:n]
        kinds = self._geom_kind[pairs]
        robot_side = kinds == KIND_ROBOT
        with_robot = robot_side.any(axis=1)
        other = np.where(robot_side[:, 0], pairs[:, 1], pairs[:, 0])[with_robot]
        other_kind = self._geom_kind[other]
        touched[self._geom_obstacle[other[other_kind == KIND_OBSTACLE]]] = True
        both = (kinds == KIND_OBSTACLE).all(axis=1)
        knocks = [tuple(self._geom_obstacle[p]) for p in pairs[both]]
        return bool((other_kind == KIND_TARGET).any()), touched, knocks

    def _obstacle_contact_force(self) -> float:
        """Sum of the normal forces (N) of the robot's contacts with obstacles now."""
        total, wrench = 0.0, np.zeros(6)
        for i in range(self.data.ncon):
            g1, g2 = self.data.contact.geom[i]
            kinds = {int(self._geom_kind[g1]), int(self._geom_kind[g2])}
            if kinds == {KIND_ROBOT, KIND_OBSTACLE}:
                mujoco.mj_contactForce(self.model, self.data, i, wrench)
                total += abs(float(wrench[0]))  # the contact frame's normal component
        return total

    def _solve_home_qpos(self) -> np.ndarray:
        """Damped least-squares IK from the ready posture to the workspace's home pose."""
        m = self.model
        d = mujoco.MjData(m)
        d.qpos[:ARM_DOF] = READY_QPOS
        target = self.limits.workspace.home_pose()
        for _ in range(200):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = np.empty(6)
            err[:3] = target[:3] - d.site_xpos[self._tcp]
            err[3:] = matrix_to_rotvec(HOME_ROTATION @ d.site_xmat[self._tcp].reshape(3, 3).T)
            if np.linalg.norm(err) < 1e-7:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._tcp)
            jac = np.vstack([self._jacp[:, :ARM_DOF], self._jacr[:, :ARM_DOF]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), err)
            d.qpos[:ARM_DOF] = np.clip(
                d.qpos[:ARM_DOF] + dq, m.jnt_range[:ARM_DOF, 0], m.jnt_range[:ARM_DOF, 1]
            )
        else:
            raise RuntimeError(f"home pose {target[:3]} is out of reach: check the Workspace")
        return d.qpos[:ARM_DOF].copy()

    # ----------------------------------------------------------------- rendering
    def render(
        self, width: int | None = None, height: int | None = None, camera: str = "scene"
    ) -> np.ndarray:
        """RGB uint8 frame from the static third-person camera ("scene", what the policy sees)
        or the wider "overview" camera for people."""
        width = width or self.config.image_size
        height = height or width
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
            _close_at_exit(self)
        renderer = self._renderers[key]
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        _close_renderers(self._renderers)

    # ----------------------------------------------------------------- external command
    # step() clips an action here; the ROS sim backend (robot.backends.sim) calls step_to with
    # the pose its safety filter computed.
    def step_to(self, pose: np.ndarray) -> StepLabels:
        """One control step towards an already clipped equilibrium `pose` [xyz, rotvec]:
        smooth equilibrium motion, physics and the step's ground-truth labels."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (6,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose must be 6 finite numbers, got {pose!r}")
        start = self.commanded_pose
        self.commanded_pose = pose.copy()
        # The equilibrium moves smoothly from `start` to the new command over the control period
        # with a matching velocity feed-forward, so steady motion is tracked without lag.
        ticks = self.config.substeps // self.config.controller_every
        period = ticks * self.config.controller_every * self.config.physics_dt
        step_pos = self.commanded_pose[:3] - start[:3]
        step_rot = matrix_to_rotvec(
            rotvec_to_matrix(self.commanded_pose[3:]) @ rotvec_to_matrix(start[3:]).T
        )
        velocity = np.concatenate([step_pos, step_rot]) / period
        start_rot = rotvec_to_matrix(start[3:])
        n, cfg = self.n_obstacles, self.config
        record = TickRecord(
            touched=np.zeros((ticks, n), dtype=bool),
            knocks=np.zeros((ticks, n, n), dtype=bool),
            linear_speed=np.empty((ticks, n)),
            angular_speed=np.empty((ticks, n)),
            contact_force=np.zeros(ticks),
        )
        touched_target = False
        disturbed = self._disturbed.copy()  # still disturbed from the previous step
        for k in range(ticks):
            alpha = (k + 1) / ticks
            equilibrium_pos = start[:3] + alpha * step_pos
            equilibrium_rot = rotvec_to_matrix(alpha * step_rot) @ start_rot @ HOME_ROTATION
            self._control_tick(equilibrium_pos, equilibrium_rot, velocity)
            hit_target, hit_obstacles, knocks = self._contacts()
            touched_target |= hit_target
            record.touched[k] = hit_obstacles
            record.linear_speed[k], record.angular_speed[k] = self.obstacle_speeds()
            record.contact_force[k] = self._obstacle_contact_force()
            disturbed |= hit_obstacles
            for a, b in knocks:  # a disturbed obstacle passes it on to the one it hits
                record.knocks[k, a, b] = record.knocks[k, b, a] = True
                if disturbed[a] or disturbed[b]:
                    disturbed[a] = disturbed[b] = True
        # at rest: below both thresholds at every tick of this step, not just at its end
        at_rest = np.all(record.linear_speed < cfg.rest_linear_speed, axis=0) & np.all(
            record.angular_speed < cfg.rest_angular_speed, axis=0
        )
        touched = record.touched.any(axis=0)
        self._disturbed = disturbed & ~at_rest
        self.touched_by_robot |= touched
        self.disturbed_by_robot |= disturbed
        self.last_labels = StepLabels(
            reward=float(touched_target),
            cost=float(disturbed.any()),
            touched_target=touched_target,
            touched_obstacles=touched,
            disturbed_obstacles=disturbed,
            at_rest=at_rest,
            ticks=record,
            contact_force=float(record.contact_force.max(initial=0.0)),
        )
        return self.last_labels


def _close_renderers(renderers: dict) -> None:
    for renderer in renderers.values():
        renderer.close()
    renderers.clear()


# GL contexts must be freed before mujoco's EGL exit handler tears the display down, even if
# close() was forgotten. atexit runs handlers in reverse order and mujoco imports its GL backend
# at the first Renderer, so this handler is registered just after that.
_LIVE_SIMS: weakref.WeakSet[SafeReachSim] = weakref.WeakSet()


def _close_at_exit(sim: SafeReachSim) -> None:
    if not _LIVE_SIMS and not getattr(_close_at_exit, "registered", False):
        atexit.register(lambda: [s.close() for s in list(_LIVE_SIMS)])
        _close_at_exit.registered = True
    _LIVE_SIMS.add(sim)
