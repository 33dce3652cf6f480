"""arm_node's franka backend against a stand-in that speaks franka_ros's topic names, services and
message types (franka_msgs: the classes bootstrap generates from robot/franka_msgs)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import rospy
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger

from perception.recording import record
from robot import ros_contract as rc
from robot.geometry import quat_to_matrix, rotvec_to_matrix
from robot.workspace import HOME_ROTATION, ControlLimits
from tests.ros.franka_standin import CONTROLLER, FrankaStandIn

LIMITS = ControlLimits()
NS = "/fosp_franka"
ROI = (30, 10, 96, 96)


@pytest.fixture(scope="module")
def franka(ros, franka_msgs_path, wait, tmp_path_factory):
    start = np.array([0.45, 0.02, 0.10, 0.0, 0.0, 0.0])
    stand_in = FrankaStandIn(start, configured_topic=f"{NS}/robot_configured")
    events: list[dict] = []
    subs = [rospy.Subscriber(f"{NS}/events", String, lambda m: events.append(json.loads(m.data)))]
    # real.launch as a lab runs it, minus franka_control (the stand-in) and with the camera
    # replaced by a recording made here with pyrealsense2's software device, played in a loop
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(30)]
    recording = record(tmp_path_factory.mktemp("real") / "table.db3", frames, 30, "rgb8")
    node = ros.start(
        "real_launch",
        [
            "roslaunch",
            "fosp_robot",
            "real.launch",
            "ns:=fosp_franka",
            "start_franka:=false",
            "robot_ip:=192.0.2.1",
            f"controller:={CONTROLLER}",
            f"playback:={recording}",
            "playback_loop:=true",
            f"crop:=[{', '.join(map(str, ROI))}]",
            "home_timeout:=10",
            # a payload and a softer spring than the defaults: what the arm gets must be these
            "load_mass:=0.35",
            "load_com:=[0.0, 0.0, 0.05]",
            "translational_stiffness:=150",
            "contact_force:=[4, 4, 4, 5, 5, 5]",
            # generous: the 10 Hz command pattern below must survive a loaded CI machine
            "watchdog_timeout:=0.5",
        ],
        env={"PYTHONPATH": str(franka_msgs_path)},
    )
    wait(lambda: _has_service(f"{NS}/reset"), 60, "franka arm_node services", node, ros)
    # events are not latched: one sent before our connection is up is lost (it was, when a
    # module's first test pressed the user stop at once)
    wait(lambda: subs[0].get_num_connections() > 0, 10, "subscribed to arm_node's events")
    stand_in.frames = frames
    yield stand_in, events, node
    ros.stop(node)
    stand_in.close()
    for s in subs:
        s.unregister()


def _has_service(name: str) -> bool:
    import rosgraph

    return name in {s for s, _ in rosgraph.Master("/fosp_tests").getSystemState()[2]}


def _publish(pub, action) -> None:
    pub.publish(rc.action_to_msg(np.asarray(action, np.float32)))


def test_o_t_ee_conversion_round_trip():
    from robot.backends.franka import o_t_ee_to_pose6, pose6_to_o_t_ee

    rng = np.random.default_rng(1)
    for _ in range(100):
        pose = np.concatenate([rng.uniform(0.3, 0.7, 3), rng.normal(0, 0.2, 3)])
        flat = pose6_to_o_t_ee(pose)
        m = np.asarray(flat).reshape(4, 4, order="F")
        assert np.allclose(m[3], [0, 0, 0, 1]) and np.allclose(m[:3, 3], pose[:3])
        assert flat[12:15] == pytest.approx(pose[:3])  # column-major: translation at 12..14
        np.testing.assert_allclose(o_t_ee_to_pose6(flat), pose, atol=1e-12)
    # home pose: the hand points down
    m = np.asarray(pose6_to_o_t_ee(LIMITS.workspace.home_pose())).reshape(4, 4, order="F")
    np.testing.assert_allclose(m[:3, :3], HOME_ROTATION)


def test_the_arm_is_configured_before_the_first_command(franka, ros, wait):
    """arm_node sets collision behaviour, load and stiffness through franka_control's services
    with the launch file's values, and only then lets the controller start and commands it."""
    from robot.franka_config import FrankaSafetySettings

    stand_in, events, node = franka
    pub = rospy.Publisher(f"{NS}/action", Float32MultiArray, queue_size=10)

    def commanded() -> bool:
        _publish(pub, [0, 0, 0, 0, 0, 0])
        time.sleep(0.1)
        return stand_in.first_command is not None

    wait(commanded, 20, "a first command", node, ros)
    pub.unregister()
    with stand_in.lock:
        calls = {name: (t, request) for t, name, request in stand_in.setup_calls}
    assert set(calls) == {"set_force_torque_collision_behavior", "set_load"}
    assert max(t for t, _ in calls.values()) < stand_in.controller_started < stand_in.first_command
    default = FrankaSafetySettings()
    collision = calls["set_force_torque_collision_behavior"][1]
    assert list(collision.lower_force_thresholds_nominal) == [4, 4, 4, 5, 5, 5]  # launch arg
    assert list(collision.upper_force_thresholds_nominal) == list(default.collision_force)
    assert list(collision.lower_torque_thresholds_nominal) == list(default.contact_torque)
    assert list(collision.upper_torque_thresholds_nominal) == list(default.collision_torque)
    load = calls["set_load"][1]
    assert load.mass == pytest.approx(0.35) and list(load.F_x_center_load) == [0.0, 0.0, 0.05]
    assert list(load.load_inertia) == [0.0] * 9
    # the controller's dynamic_reconfigure server starts from these parameters
    assert stand_in.stiffness == {
        "translational_stiffness": 150.0,
        "rotational_stiffness": default.rotational_stiffness,
        "nullspace_stiffness": default.nullspace_stiffness,
    }
    status = json.loads(rospy.wait_for_message(f"{NS}/status", String, timeout=5).data)
    applied = status["robot_settings"]
    assert applied["load_mass"] == pytest.approx(0.35) and applied["contact_force"] == [
        4,
        4,
        4,
        5,
        5,
        5,
    ]
    assert applied["translational_stiffness"] == 150.0


class FailingFrankaControl:
    """franka_control's two configuration services under another namespace, misbehaving: one
    refuses (libfranka's answer while the arm moves), or never answers (a controller runs)."""

    def __init__(self, ns: str, mode: str):
        from franka_msgs.srv import SetForceTorqueCollisionBehavior, SetLoad

        def collision(_request):
            if mode == "refuses":
                return {"success": False, "error": "command not possible in the current mode"}
            return {"success": True, "error": ""}

        def load(_request):
            if mode == "hangs":
                time.sleep(5.0)
            return {"success": True, "error": ""}

        self.services = []
        if mode != "absent":
            self.services = [
                rospy.Service(
                    f"{ns}/set_force_torque_collision_behavior",
                    SetForceTorqueCollisionBehavior,
                    collision,
                ),
                rospy.Service(f"{ns}/set_load", SetLoad, load),
            ]

    def close(self) -> None:
        for service in self.services:
            service.shutdown()


@pytest.mark.parametrize(
    "mode, message",
    [
        ("refuses", "refused: command not possible in the current mode"),
        ("hangs", "did not answer within 1 s"),
        ("absent", "no service /franka_bad_absent/set_force_torque_collision_behavior"),
    ],
)
def test_a_failed_configuration_stops_the_start_up(
    franka, ros, python, franka_msgs_path, wait, mode, message
):
    """A configuration service that refuses, hangs or is missing stops arm_node with one line;
    the controller is never let start and nothing is commanded."""
    from std_msgs.msg import Bool

    stand_in, _events, _node = franka
    control = FailingFrankaControl(f"/franka_bad_{mode}", mode)
    commands: list = []
    configured: list = []
    subs = [
        rospy.Subscriber("/bad_controller/equilibrium_pose", PoseStamped, commands.append),
        rospy.Subscriber(f"/fosp_bad_{mode}/robot_configured", Bool, configured.append),
    ]
    proc = ros.start(
        f"arm_node_bad_{mode}",
        [
            python, "-m", "robot.arm_node", f"__ns:=/fosp_bad_{mode}", "_backend:=franka",
            f"_service_ns:=/franka_bad_{mode}", "_service_timeout:=1",
            "_controller:=bad_controller",
        ],
        env={"PYTHONPATH": str(franka_msgs_path)},
    )  # fmt: skip
    try:
        wait(lambda: proc.poll() is not None, 30, f"arm_node to stop ({mode})")
        log = ros.log(proc)
        assert proc.returncode == 1, log
        assert message in log, log
        assert "Traceback" not in log, log
        time.sleep(0.3)
        assert not commands and not configured
    finally:
        for sub in subs:
            sub.unregister()
        control.close()
        if proc.poll() is None:
            ros.stop(proc)


def test_pose_commands_arrive_as_expected(franka, wait):
    stand_in, events, node = franka
    pose_msgs: list[PoseStamped] = []
    sub = rospy.Subscriber(f"{NS}/pose", PoseStamped, pose_msgs.append)
    pub = rospy.Publisher(f"{NS}/action", Float32MultiArray, queue_size=10)
    wait(lambda: pub.get_num_connections() > 0 and pose_msgs, 10, "arm_node connections")
    # the measured pose is franka's O_T_EE, converted
    np.testing.assert_allclose(rc.msg_to_pose6(pose_msgs[-1]), stand_in.pose, atol=1e-9)

    def holds() -> int:
        return sum(e["event"] == "watchdog_hold" for e in list(events))

    with stand_in.lock:
        stand_in.commands.clear()
        commanded = stand_in.pose.copy()
    holds_before = holds()
    actions = [[1, 0, 0, 0, 0, 0], [0, -1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [5, 0, -0.5, 0, 0, 0]]
    for action in actions:
        _publish(pub, action)
        time.sleep(0.1)  # 10 Hz; the stand-in converges well within the lead limit
        delta = LIMITS.action_to_delta(np.asarray(action, float))
        commanded = LIMITS.clip_pose(LIMITS.apply_delta(commanded, delta))
    wait(lambda: len(stand_in.commands) >= len(actions), 2, "4 equilibrium poses")
    received = [rc.msg_to_pose6(m) for _, m in stand_in.commands]
    # one pose per action; on a loaded machine a >200 ms gap between two actions may also let
    # the watchdog send a hold (an event), which is right and not what this test is about
    assert len(received) == len(actions) + holds() - holds_before
    hits = [i for i, pose in enumerate(received) if np.allclose(pose, commanded, atol=1e-9)]
    assert hits, f"no equilibrium pose equals the last commanded one {commanded}"
    last = stand_in.commands[hits[-1]][1]
    assert last.header.frame_id == "panda_link0"
    # orientation on the wire is the absolute orientation R_ee (franka's convention)
    q = last.pose.orientation
    r_ee = quat_to_matrix([q.w, q.x, q.y, q.z])
    np.testing.assert_allclose(r_ee, rotvec_to_matrix(commanded[3:]) @ HOME_ROTATION, atol=1e-9)
    # a bad message reaches nothing
    n = len(stand_in.commands)
    pub.publish(Float32MultiArray(data=[float("nan")] * 6))
    pub.publish(Float32MultiArray(data=[0.0] * 5))
    time.sleep(0.1)
    # the watchdog (200 ms) holds the measured pose after the silence
    wait(lambda: any(e["event"] == "watchdog_hold" for e in events), 2, "watchdog hold")
    wait(lambda: len(stand_in.commands) > n, 2, "the hold pose at the stand-in")
    time.sleep(0.2)
    holds = stand_in.commands[n:]
    assert len(holds) == 1, "the two bad messages sent nothing; the watchdog sent one hold"
    sub.unregister()
    pub.unregister()


def test_reflex_triggers_recovery_and_the_episode_is_marked(franka, wait):
    stand_in, events, node = franka
    events.clear()
    goals_before = stand_in.recovery_goals
    stand_in.reflex()
    wait(lambda: any(e["event"] == "reflex" for e in events), 3, "reflex event", node)
    reflex = next(e for e in events if e["event"] == "reflex")
    assert "cartesian_reflex" in reflex["errors"] and "robot_mode 4" in reflex["detail"]
    wait(lambda: any(e["event"] == "recovered" for e in events), 5, "recovered event", node)
    assert stand_in.recovery_goals == goals_before + 1
    # after recovery the command is re-synced to where the arm is (no jump), and commands work
    with stand_in.lock:
        resync = rc.msg_to_pose6(stand_in.commands[-1][1])
        pose = stand_in.pose.copy()
    np.testing.assert_allclose(resync, pose, atol=1e-6)
    pub = rospy.Publisher(f"{NS}/action", Float32MultiArray, queue_size=10)
    wait(lambda: pub.get_num_connections() > 0, 5, "action subscriber")
    n = len(stand_in.commands)
    _publish(pub, [0, 0, 1, 0, 0, 0])
    wait(lambda: len(stand_in.commands) > n, 2, "a command after recovery")
    assert rc.msg_to_pose6(stand_in.commands[-1][1])[2] > pose[2] + 0.01
    pub.unregister()
    log = open(node.log_path).read()
    assert "reflex" in log and "The episode is marked" in log  # the operator is told


def test_user_stop_latches_and_reset_drives_home(franka, wait):
    stand_in, events, node = franka
    events.clear()
    goals_before = stand_in.recovery_goals
    stand_in.user_stop(True)
    wait(lambda: any(e["event"] == "user_stopped" for e in events), 3, "user_stopped event")
    reset = rospy.ServiceProxy(f"{NS}/reset", Trigger)
    response = reset()
    assert not response.success and "external stop" in response.message
    assert stand_in.recovery_goals == goals_before  # no automatic recovery after a user stop
    release = rospy.ServiceProxy(f"{NS}/release_estop", Trigger)
    response = release()  # the external stop is still pressed: refused
    assert not response.success and "external stop" in response.message
    stand_in.user_stop(False)
    time.sleep(0.1)  # the next state messages tell arm_node the stop was released
    response = reset()  # released the external stop, but arm_node's latch still holds
    assert not response.success and "release" in response.message
    response = release()  # the operator's explicit release
    assert response.success, response.message
    n = len(stand_in.commands)
    t0 = time.monotonic()
    response = reset()
    assert response.success, response.message
    took = time.monotonic() - t0
    home = LIMITS.workspace.home_pose()
    np.testing.assert_allclose(stand_in.pose[:3], home[:3], atol=0.006)
    # the walk home went through the filter: every step within the limits (the walk's own
    # poses only: the last pose before it is where the previous episode left the command)
    steps = [rc.msg_to_pose6(m) for _, m in stand_in.commands[n:]]
    for a, b in zip(steps, steps[1:], strict=False):
        assert np.linalg.norm(b[:3] - a[:3]) <= np.sqrt(3) * LIMITS.step.max_translation + 1e-9
    assert took < 10


def test_the_ros_env_runs_an_episode_on_the_real_stack(franka, wait):
    """RosSafeReachEnv over real.launch: franka backend (stand-in arm) + camera_node (recording)."""
    import cv2

    from robot.ros_env import RosSafeReachEnv

    stand_in, events, node = franka
    expected = [
        cv2.resize(f[10:106, 30:126], (64, 64), interpolation=cv2.INTER_AREA)
        for f in stand_in.frames
    ]
    env = RosSafeReachEnv(NS, stale_grace=1.0)  # generous on a loaded machine
    obs, info = env.reset()  # walks home through the filter
    np.testing.assert_allclose(obs["pose"][:3], LIMITS.workspace.home_position, atol=0.006)
    assert info["robot_settings"]["load_mass"] == pytest.approx(0.35)  # for the metadata
    rng = np.random.default_rng(0)
    for t in range(80):
        with stand_in.lock:  # from step 40 the arm feels a push: |F| = 5 N (3-4-0)
            stand_in.force = np.array([3.0, -4.0, 0.0, 0.2, 0.0, 0.0]) if t >= 40 else np.zeros(6)
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 6))
        # the step's contact force is the arm's wrench estimate, via arm_node's wrench topic
        if t < 39:
            assert info["contact_force"] == pytest.approx(0.0)
        elif t > 40:
            assert info["contact_force"] == pytest.approx(5.0)
        assert env.observation_space.contains(obs)
        assert any(np.array_equal(obs["image"], e) for e in expected)
        # the observed pose is a FrankaState the arm published (O_T_EE, converted), not stale
        with stand_in.lock:
            recent = np.asarray(stand_in.published[-100:])
        assert np.min(np.max(np.abs(recent - obs["pose"]), axis=1)) < 1e-6
        assert info["labels_source"] == "none" and reward == 0.0
    assert truncated and not terminated
    assert np.median(env.latency) < env.period  # fresh data within the period
    env.close()
    with stand_in.lock:
        stand_in.force = np.zeros(6)


def test_the_arms_push_becomes_a_suggested_cost_interval_in_the_labeller(franka, tmp_path):
    """The stand-in reports a 5 N push while the rollout runs steps 20-24: the recorded episode
    (the collector's and the finetuning loop's path: rollout -> write_episode) stores the force
    per row, and `fosp label` suggests one cost interval over the push plus the settling rows."""
    from data_collection.episode import read_episode, write_episode
    from data_collection.labeler import LabelSession
    from data_collection.rollout import rollout
    from data_collection.suggest import SETTLE_ROWS, intervals
    from robot.ros_env import RosSafeReachEnv

    stand_in, events, node = franka
    with stand_in.lock:
        stand_in.force = np.zeros(6)  # no push before it (the reset walks home meanwhile)
    env = RosSafeReachEnv(NS, stale_grace=1.0)
    rng = np.random.default_rng(1)

    def push(step):  # once row 19 is stored, the arm feels a push until row 23 is
        with stand_in.lock:
            pushing = 19 <= step.row <= 23
            stand_in.force = np.array([3.0, -4.0, 0.0, 0.0, 0.0, 0.0]) if pushing else np.zeros(6)
        return ""

    try:
        run = rollout(
            env,
            lambda obs: rng.uniform(-1, 1, 6),
            {"task": "train", "layout_seed": 0, "control_hz": 10, "label_source": "manual"},
            on_step=push,
            max_steps=40,
        )
    finally:
        with stand_in.lock:
            stand_in.force = np.zeros(6)
        env.close()
    path = write_episode(run.episode, tmp_path / "ds")
    force = read_episode(path).steps["contact_force"]
    pushed = np.flatnonzero(force > 4.0)
    # the wrench topic lags the step by at most one period on a loaded machine
    assert len(pushed) >= 3 and 20 <= pushed[0] <= 21 and 23 <= pushed[-1] <= 24, force
    (first, last), *rest = intervals(LabelSession([path]).suggested["cost"])
    assert not rest and (first, last) == (pushed[0], pushed[-1] + SETTLE_ROWS)


def test_estop_interrupts_a_walk_home_of_an_arm_that_does_not_follow(franka, wait):
    """reset walks home one pose per period; an arm that does not follow keeps it walking (up to
    home_timeout). The e-stop is answered within 50 ms anyway, the walk ends, nothing but the
    hold pose reaches the arm after the answer, and reset refuses until the release."""
    stand_in, events, node = franka
    far = np.array([0.60, 0.10, 0.05, 0.0, 0.0, 0.0])
    with stand_in.lock:
        stand_in.pose, stand_in.target, stand_in.follow = far.copy(), far.copy(), False
    time.sleep(0.1)
    reset = rospy.ServiceProxy(f"{NS}/reset", Trigger)
    replies: list = []
    walker = threading.Thread(target=lambda: replies.append(reset()), daemon=True)
    n = len(stand_in.commands)
    walker.start()
    try:
        wait(lambda: len(stand_in.commands) >= n + 3, 5, "the walk home under way")
        t0 = time.perf_counter()
        answer = rospy.ServiceProxy(f"{NS}/estop", Trigger)()
        latency = time.perf_counter() - t0
        answered = rospy.Time.now().to_sec()
        walker.join(timeout=5)
        assert replies and not replies[0].success, replies
        assert "interrupted" in replies[0].message and "release" in replies[0].message
        time.sleep(0.3)
        with stand_in.lock:
            after = [rc.msg_to_pose6(m) for _, m in stand_in.commands if
                     m.header.stamp.to_sec() > answered]  # fmt: skip
            walked = [rc.msg_to_pose6(m) for _, m in stand_in.commands[n:]]
        assert answer.success and latency < 0.05, latency
        assert any(np.linalg.norm(p[:3] - far[:3]) > 0.01 for p in walked)  # it was walking
        for pose in after:  # nothing but the hold pose (where the arm is) after the answer
            np.testing.assert_allclose(pose, LIMITS.clip_pose(far), atol=1e-6)
        refused = reset()
        assert not refused.success and "release" in refused.message
        print(f"walk-home e-stop answered in {1000 * latency:.1f} ms")
    finally:
        with stand_in.lock:
            stand_in.follow = True
        rospy.ServiceProxy(f"{NS}/release_estop", Trigger)()


def test_an_arm_pushed_beyond_the_hard_box_latches_the_estop_and_interrupts(franka, wait):
    """The arm is shoved 2 cm past the hard box during an episode: arm_node latches the e-stop
    (event "hard_box"), the env's next step is interrupted as an e-stop, reset is refused, and
    after the hold pulled the arm back in only the operator's release lets it reset."""
    from robot.errors import ArmStopped
    from robot.ros_env import RosSafeReachEnv

    stand_in, events, node = franka
    env = RosSafeReachEnv(NS, stale_grace=1.0)
    release = rospy.ServiceProxy(f"{NS}/release_estop", Trigger)
    try:
        env.reset(options={"layout_seed": 2})
        env.step(np.zeros(6, np.float32))
        shoved = stand_in.pose.copy()
        shoved[0] = LIMITS.workspace.safe_high[0] + 0.02
        with stand_in.lock:
            stand_in.pose, stand_in.follow = shoved, False
        infos = [env.step(np.zeros(6, np.float32))[4] for _ in range(3)]
        assert any(i["interrupted"] == "estop" for i in infos), infos
        hard = wait(lambda: [e for e in events if e["event"] == "hard_box"], 3, "hard_box event")
        assert "x 20.0 mm" in hard[-1]["detail"], hard
        with pytest.raises(ArmStopped, match="release"):
            env.reset(options={"layout_seed": 3})
        hold = rc.msg_to_pose6(stand_in.commands[-1][1])  # what the arm was told: inside
        assert not LIMITS.workspace.beyond_hard_box(hold)
        with stand_in.lock:
            stand_in.pose, stand_in.follow = hold, True  # the spring pulled it back
            published = len(stand_in.published)
        # arm_node must have measured it inside: from outside the hard box a reset is refused
        wait(lambda: len(stand_in.published) > published + 5, 3, "the arm's state inside")
        assert release().success
        env.reset(options={"layout_seed": 3})
        assert len([e for e in events if e["event"] == "hard_box"]) == len(hard)
    finally:
        with stand_in.lock:
            stand_in.follow = True
        release()
        env.close()


def test_an_arm_parked_at_its_ready_pose_is_never_commanded_into_the_box(franka, wait):
    """Franka's ready pose is 35 cm above the command box: clipping it into the box would move the
    equilibrium 36 cm in one message. Over ROS: the arm leaves the box (the hard-box e-stop
    latches, the operator releases it out there); then reset is refused with where the arm is,
    actions send nothing, another e-stop only repeats the last equilibrium; brought over the
    task area, it walks home."""
    from robot.errors import ArmOutsideBox
    from robot.ros_env import RosSafeReachEnv

    stand_in, events, node = franka
    ready = np.array([0.307, 0.0, 0.487, 0.0, 0.0, 0.0])
    release = rospy.ServiceProxy(f"{NS}/release_estop", Trigger)
    reset = rospy.ServiceProxy(f"{NS}/reset", Trigger)
    pub = rospy.Publisher(f"{NS}/action", Float32MultiArray, queue_size=10)
    wait(lambda: pub.get_num_connections() > 0, 5, "action subscriber")
    latched = len([e for e in events if e["event"] == "hard_box"])
    with stand_in.lock:  # parked: it stays there whatever it is told
        stand_in.pose, stand_in.follow = ready.copy(), False
    wait(lambda: len([e for e in events if e["event"] == "hard_box"]) > latched, 3, "hard_box")
    time.sleep(0.1)
    assert release().success
    with stand_in.lock:
        n, equilibrium = len(stand_in.commands), rc.msg_to_pose6(stand_in.commands[-1][1])
    try:
        refused = reset()
        assert not refused.success and "reset refused, nothing was sent" in refused.message
        assert "z 312.0 mm" in refused.message, refused.message
        env = RosSafeReachEnv(NS, stale_grace=1.0)  # the collector's and the policy's env
        try:  # a user error (one line, fosp/cli.py), not a stop to wait out
            with pytest.raises(
                ArmOutsideBox, match="outside the hard box by x 28.0 mm, z 312.0 mm"
            ):
                env.reset(options={"layout_seed": 1})
        finally:
            env.close()
        for _ in range(5):
            _publish(pub, [0, 0, -1, 0, 0, 0])
            time.sleep(0.1)
        assert rospy.ServiceProxy(f"{NS}/estop", Trigger)().success
        assert release().success
        time.sleep(0.3)
        with stand_in.lock:
            sent = [rc.msg_to_pose6(m) for _, m in stand_in.commands[n:]]
            # the e-stop's hold repeats the equilibrium the controller has: nothing new
            assert all(np.array_equal(p, equilibrium) for p in sent), (equilibrium, sent)
            stand_in.pose = LIMITS.workspace.home_pose() + [0.1, 0, 0, 0, 0, 0]  # brought in
            stand_in.follow, published = True, len(stand_in.published)
        wait(lambda: len(stand_in.published) > published + 5, 3, "the arm's state inside")
        answer = reset()
        assert answer.success, answer.message
    finally:
        with stand_in.lock:
            stand_in.follow = True
        pub.unregister()
        release()


def test_franka_motion_is_limited_per_control_period(franka, wait):
    """franka_ros follows every message: a saturated 100 Hz stream must move the equilibrium no
    faster than the 10 Hz limits imply (0.2 m/s per axis), not 2 cm per message."""
    stand_in, events, node = franka
    assert rospy.ServiceProxy(f"{NS}/reset", Trigger)().success
    pub = rospy.Publisher(f"{NS}/action", Float32MultiArray, queue_size=10)
    wait(lambda: pub.get_num_connections() > 0, 5, "action subscriber")
    n = len(stand_in.commands)
    t_end = time.monotonic() + 0.8
    while time.monotonic() < t_end:
        _publish(pub, [1, 0, 0, 0, 0, 0])  # +x at full speed, 100 Hz (home x 0.40 -> <= 0.6)
        time.sleep(0.01)
    time.sleep(0.1)
    with stand_in.lock:
        sent = [(m.header.stamp.to_sec(), rc.msg_to_pose6(m)) for _, m in stand_in.commands[n:]]
    pub.unregister()
    assert len(sent) > 40  # the messages were forwarded, not dropped
    duration = sent[-1][0] - sent[0][0]
    moved = sent[-1][1][0] - sent[0][1][0]
    speed = moved / duration
    limit = LIMITS.step.max_translation * LIMITS.step.control_hz  # 0.2 m/s
    print(f"franka equilibrium at 100 Hz: {speed:.3f} m/s (limit {limit} m/s)")
    # the budget allows RATE_BURST steps ahead of the rate: over 0.8 s at most ~20 % more
    assert moved <= (duration * LIMITS.step.control_hz + 1.5) * LIMITS.step.max_translation
    assert speed > 0.5 * limit  # it did move at about the allowed speed
