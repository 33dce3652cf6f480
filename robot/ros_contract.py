"""The ROS topic/service contract of the robot side, and the message <-> NumPy conversions.

Standard message types only (nothing needs a catkin build). Names are relative to one namespace,
`/fosp` by default (the launch files put every node in it). docs/ros.md has the table.

| name | type | direction | content |
|---|---|---|---|
| action | std_msgs/Float32MultiArray | -> arm_node | 6-D action in [-1, 1] (xyz, rotvec) |
| pose | geometry_msgs/PoseStamped | arm_node -> | measured TCP pose, base frame, absolute q |
| commanded_pose | geometry_msgs/PoseStamped | arm_node -> | filtered command sent to the backend |
| image | sensor_msgs/Image (rgb8, 64x64) | camera/sim -> | the policy's image |
| image_full | sensor_msgs/Image (rgb8) | camera/sim -> | full frame for the operator (optional) |
| labels | std_msgs/String (JSON) | sim -> | reward, cost, contacts, contact force of a step |
| wrench | geometry_msgs/WrenchStamped | arm_node -> | franka: external wrench (O_F_ext_hat_K) |
| events | std_msgs/String (JSON) | arm_node -> | estop, watchdog hold, reflex, recovery, reset |
| status | std_msgs/String (JSON, latched) | arm_node -> | backend, e-stop, hold, counters |
| reset | std_srvs/Trigger | service | home pose (sim: also a new layout); refused while e-stopped |
| estop | std_srvs/Trigger | service | hold + latch until an operator calls release_estop |
| hold | std_srvs/Trigger | service | hold the measured pose now |
| release_estop | std_srvs/Trigger | service | operator's release after a stop (never automatic) |
| reset_layout_seed | int param | set before reset | sim: layout seed of the next reset |

Pose convention on the wire: PoseStamped position = TCP xyz (m, robot base frame), orientation =
the absolute orientation R_ee as a quaternion (as franka_ros uses). In Python the stack uses the
6-D pose [xyz, rotvec(R_ee @ HOME_ROTATION.T)] (robot.geometry); these functions convert.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String

from perception.ros_image import IMAGE, IMAGE_FULL, image_to_msg, msg_to_image
from robot.geometry import matrix_to_quat, matrix_to_rotvec, quat_to_matrix, rotvec_to_matrix
from robot.workspace import HOME_ROTATION

NAMESPACE = "/fosp"
ACTION, POSE, COMMANDED_POSE = "action", "pose", "commanded_pose"
LABELS, EVENTS, STATUS, WRENCH = "labels", "events", "status", "wrench"
RESET, ESTOP, HOLD, RELEASE = "reset", "estop", "hold", "release_estop"
RESET_LAYOUT_SEED = "reset_layout_seed"
BASE_FRAME = "panda_link0"
# franka_ros as a lab runs it (the franka backend's defaults and arm_node's parameters)
FRANKA_CONTROLLER = "cartesian_impedance_example_controller"
FRANKA_STATE_TOPIC = "/franka_state_controller/franka_states"
FRANKA_RECOVERY_ACTION = "/franka_control/error_recovery"


# the image conversions live in perception (cameras know nothing of the arm); re-exported here
__all__ = [
    "ACTION", "BASE_FRAME", "COMMANDED_POSE", "ESTOP", "EVENTS", "FRANKA_CONTROLLER",
    "FRANKA_RECOVERY_ACTION", "FRANKA_STATE_TOPIC", "HOLD", "IMAGE", "IMAGE_FULL",
    "LABELS", "NAMESPACE", "POSE", "RELEASE", "RESET", "RESET_LAYOUT_SEED", "STATUS",
    "action_to_msg",
    "image_to_msg", "json_msg", "matrix_to_pose6", "msg_json", "msg_to_image", "msg_to_pose6",
    "name", "pose6_to_matrix", "pose6_to_msg",
]  # fmt: skip


def name(namespace: str, item: str) -> str:
    return f"{namespace.rstrip('/')}/{item}"


# ---------------------------------------------------------------- pose
def pose6_to_matrix(pose: np.ndarray) -> np.ndarray:
    """6-D pose -> 4x4 homogeneous transform of the TCP in the base frame."""
    t = np.eye(4)
    t[:3, :3] = rotvec_to_matrix(np.asarray(pose[3:], float)) @ HOME_ROTATION
    t[:3, 3] = pose[:3]
    return t


def matrix_to_pose6(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.concatenate([t[:3, 3], matrix_to_rotvec(t[:3, :3] @ HOME_ROTATION.T)])


def pose6_to_msg(pose: np.ndarray, stamp: Any, frame_id: str = BASE_FRAME) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose[:3])
    w, x, y, z = matrix_to_quat(rotvec_to_matrix(np.asarray(pose[3:], float)) @ HOME_ROTATION)
    o = msg.pose.orientation
    o.w, o.x, o.y, o.z = float(w), float(x), float(y), float(z)
    return msg


def msg_to_pose6(msg: PoseStamped) -> np.ndarray:
    p, o = msg.pose.position, msg.pose.orientation
    rot = quat_to_matrix(np.array([o.w, o.x, o.y, o.z]))
    return np.concatenate([[p.x, p.y, p.z], matrix_to_rotvec(rot @ HOME_ROTATION.T)])


# ---------------------------------------------------------------- action
def action_to_msg(action: np.ndarray) -> Float32MultiArray:
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label="action", size=len(action), stride=len(action))]
    msg.data = [float(v) for v in np.asarray(action).ravel()]
    return msg


# ---------------------------------------------------------------- JSON payloads
def json_msg(payload: dict) -> String:
    return String(data=json.dumps(payload, default=_json_default))


def msg_json(msg: String) -> dict:
    return json.loads(msg.data)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def wrench_to_msg(wrench: np.ndarray, stamp: Any, frame_id: str = BASE_FRAME) -> WrenchStamped:
    """[Fx, Fy, Fz (N), Tx, Ty, Tz (Nm)] -> WrenchStamped."""
    msg = WrenchStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    f, t = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in np.asarray(wrench, np.float64)[:6])
    return msg


def msg_force(msg: WrenchStamped) -> float:
    """|F| (N) of a WrenchStamped."""
    f = msg.wrench.force
    return float(np.linalg.norm([f.x, f.y, f.z]))
