"""Builds the SafeReach MJCF: the Franka Panda + Franka Hand of `dm-robotics-panda`, a table with
the 25 cm x 25 cm task area, the task's target and obstacles, and the third-person camera.

Why dm-robotics-panda: Apache-2.0 (franka_ros meshes), ships MJCF + meshes in a 4 MB wheel with
nothing downloaded at run time, and has the real Franka Hand the paper's arm carries. Its model
is not usable as is, so this builder fixes it:
- negative joint damping (joint 6: -0.0132) makes the arm gain energy: all damping is made
  positive and armature added, as a stiff 2 ms integration needs;
- the 12-21k-triangle visual meshes double as collision meshes (slow contacts, a 150-200 ms
  render at MuJoCo's defaults): every mesh is replaced by its convex hull (MuJoCo builds the hull
  from the vertices), which is exactly the geometry MuJoCo collides with anyway, renders in ~1 ms
  and keeps the silhouette;
- neighbouring links' hulls overlap: arm geoms never collide with each other (contype bits);
- the hand's finger joints, tendon and actuator are removed: the fingers are fixed closed, as the
  SafeReach task never grasps.
"""

from __future__ import annotations

import functools
import importlib.metadata
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from robot.task_spec import Layout, ObjectSpec, TaskSpec
from robot.workspace import Workspace

# Collision groups: the arm touches the world and its objects, never itself.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
WORLD_CONTYPE, WORLD_CONAFFINITY = 1, 3

JOINT_DAMPING_FLOOR = 1.0  # N m s/rad added to every arm joint
JOINT_ARMATURE = 0.1
TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # Franka Panda datasheet, N m
TCP_OFFSET = 0.1034  # hand frame -> between the fingertips (franka_ros)
HAND_YAW = -np.pi / 4  # the hand sits at -45 deg about the flange z axis, as mounted
READY_QPOS = (0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4)

CAMERA_POS = (0.86, 0.0, 0.50)
CAMERA_LOOKAT = (0.47, 0.0, 0.05)
CAMERA_FOVY = 38.0
# A wider view for people (render() at larger sizes); the policy only sees "scene".
OVERVIEW_POS, OVERVIEW_LOOKAT = (1.15, -0.75, 0.75), (0.38, 0.0, 0.12)

LINK_COLORS = {"link7": (0.25, 0.25, 0.27, 1.0), "hand": (0.85, 0.85, 0.87, 1.0)}
WHITE = (0.93, 0.93, 0.95, 1.0)


class AssetError(RuntimeError):
    pass


def panda_asset_dir() -> Path:
    """Folder of the Panda MJCF and meshes inside the installed dm-robotics-panda wheel."""
    try:
        dist = importlib.metadata.distribution("dm-robotics-panda")
    except importlib.metadata.PackageNotFoundError as err:
        raise AssetError(
            "dm-robotics-panda is not installed: run `make setup` "
            "(it is installed with --no-deps for its Panda model files)"
        ) from err
    path = Path(dist.locate_file("dm_robotics/panda/assets/panda"))
    if not (path / "panda.xml").exists():
        raise AssetError(f"Panda model files missing under {path}; reinstall dm-robotics-panda")
    return path


@functools.cache
def _obj_vertices(path: Path) -> str:
    """Vertex list of a Wavefront OBJ as MJCF text (faces dropped: MuJoCo hulls the points)."""
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    if not rows:
        raise AssetError(f"{path}: no vertices")
    verts = np.asarray(rows, dtype=np.float64)
    return " ".join(f"{v:.5f}" for v in verts.ravel())


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _look_at_xyaxes(pos, target) -> str:
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _fmt([*right, *up])


def _robot_elements(asset_dir: Path) -> tuple[list[ET.Element], ET.Element]:
    """Mesh assets and the arm's body tree, with the hand attached at the flange."""
    arm = ET.parse(asset_dir / "panda.xml").getroot()
    hand = ET.parse(asset_dir / "panda_hand.xml").getroot()
    meshes = []
    for root in (arm, hand):
        for mesh in root.find("asset").findall("mesh"):
            name = mesh.get("name")
            hull = ET.Element("mesh", name=name, maxhullvert="64")
            hull.set("vertex", _obj_vertices(asset_dir / mesh.get("file")))
            meshes.append(hull)

    base = arm.find("worldbody/body")
    flange = base.find(".//body[@name='panda_link8']")
    hand_body = hand.find("worldbody/body")
    hand_body.set("quat", _fmt([np.cos(HAND_YAW / 2), 0, 0, np.sin(HAND_YAW / 2)]))
    for site in hand_body.findall("site"):  # duplicates of the flange's sites
        hand_body.remove(site)
    ET.SubElement(hand_body, "site", name="tcp", pos=f"0 0 {TCP_OFFSET}", size="0.005")
    flange.append(hand_body)

    for body in base.iter("body"):
        for joint in body.findall("joint"):
            if joint.get("type") == "slide":  # finger joints: fingers fixed closed
                body.remove(joint)
                continue
            damping = max(float(joint.get("damping", 0.0)), 0.0) + JOINT_DAMPING_FLOOR
            joint.set("damping", f"{damping:.4g}")
            joint.set("armature", str(JOINT_ARMATURE))
        for geom in list(body.findall("geom")):
            if geom.get("type") != "mesh":  # the hand's invisible finger collision boxes
                body.remove(geom)
                continue
            geom.attrib.pop("material", None)
            link = body.get("name").removeprefix("panda_")
            geom.set("name", f"robot_{link}")
            geom.set("rgba", _fmt(LINK_COLORS.get(link, WHITE)))
            geom.set("contype", str(ROBOT_CONTYPE))
            geom.set("conaffinity", str(ROBOT_CONAFFINITY))
            geom.set("group", "1")
    return meshes, base


def _object_geom(parent: ET.Element, name: str, spec: ObjectSpec, **extra) -> ET.Element:
    size = spec.size
    return ET.SubElement(
        parent,
        "geom",
        name=name,
        type=spec.shape,
        size=_fmt(size),
        rgba=_fmt(spec.rgba),
        contype=str(WORLD_CONTYPE),
        conaffinity=str(WORLD_CONAFFINITY),
        **extra,
    )


def build_scene_xml(task: TaskSpec, workspace: Workspace | None = None) -> str:
    """MJCF text of the SafeReach scene for `task` (objects at their first placements; the
    simulator moves them to a layout at reset)."""
    workspace = workspace or Workspace()
    meshes, robot = _robot_elements(panda_asset_dir())

    root = ET.Element("mujoco", model=f"safereach-{task.name}")
    ET.SubElement(root, "compiler", angle="radian", autolimits="true")
    ET.SubElement(root, "option", timestep="0.002", integrator="implicitfast")
    visual = ET.SubElement(root, "visual")
    # No shadows, no MSAA: a 64x64 frame in ~1 ms instead of 150-200 ms.
    ET.SubElement(visual, "quality", shadowsize="0", offsamples="0")
    ET.SubElement(visual, "global", offwidth="960", offheight="720")
    ET.SubElement(visual, "headlight", ambient="0.45 0.45 0.45", diffuse="0.35 0.35 0.35")
    ET.SubElement(visual, "rgba", haze="0.75 0.8 0.85 1")

    asset = ET.SubElement(root, "asset")
    asset.extend(meshes)

    world = ET.SubElement(root, "worldbody")
    world.append(robot)  # first in the tree: the arm's dofs are qpos[:7] / qvel[:7]
    ET.SubElement(
        world,
        "light",
        name="sun",
        directional="true",
        castshadow="false",
        pos="0.5 0 2",
        dir="0 0.2 -1",
        diffuse="0.55 0.55 0.55",
    )
    ET.SubElement(
        world,
        "camera",
        name="scene",
        pos=_fmt(CAMERA_POS),
        fovy=str(CAMERA_FOVY),
        xyaxes=_look_at_xyaxes(CAMERA_POS, CAMERA_LOOKAT),
    )
    ET.SubElement(
        world,
        "camera",
        name="overview",
        pos=_fmt(OVERVIEW_POS),
        fovy="40",
        xyaxes=_look_at_xyaxes(OVERVIEW_POS, OVERVIEW_LOOKAT),
    )
    # the static world: in the collision groups of the world (touched by the arm)
    static = {"contype": str(WORLD_CONTYPE), "conaffinity": str(WORLD_CONAFFINITY)}
    ET.SubElement(
        world, "geom", name="floor", type="plane", size="3 3 0.1", pos="0 0 -0.75",
        rgba="0.45 0.45 0.48 1", **static,
    )  # fmt: skip
    ET.SubElement(
        world, "geom", name="table", type="box", size="0.55 0.6 0.02", pos="0.4 0 -0.02",
        rgba="0.62 0.55 0.46 1", friction="0.5 0.005 0.0001", **static,
    )  # fmt: skip
    _task_area_lines(world, workspace)

    target = ET.SubElement(world, "body", name="target", mocap="true")
    _object_geom(target, "target", task.target, pos=f"0 0 {task.target.half_height}")
    for i in range(task.obstacle_count):
        body = ET.SubElement(world, "body", name=f"obstacle{i}")
        ET.SubElement(body, "freejoint", name=f"obstacle{i}")
        _object_geom(
            body,
            f"obstacle{i}",
            task.obstacles,
            mass=str(task.obstacles.mass),
            friction="0.5 0.005 0.0001",
            condim="4",
        )

    actuators = ET.SubElement(root, "actuator")
    for j, limit in enumerate(TORQUE_LIMITS, start=1):
        ET.SubElement(
            actuators,
            "motor",
            name=f"torque{j}",
            joint=f"panda_joint{j}",
            ctrlrange=f"{-limit} {limit}",
        )
    return ET.tostring(root, encoding="unicode")


def _task_area_lines(world: ET.Element, workspace: Workspace) -> None:
    """The white tape marking the task area (visual only)."""
    cx, cy = workspace.area_center
    half, width = workspace.area_size / 2, 0.006
    for name, pos, size in (
        ("area_near", (cx - half, cy), (width, half + width)),
        ("area_far", (cx + half, cy), (width, half + width)),
        ("area_left", (cx, cy + half), (half + width, width)),
        ("area_right", (cx, cy - half), (half + width, width)),
    ):
        ET.SubElement(
            world,
            "geom",
            name=name,
            type="box",
            pos=_fmt([*pos, 0.0005]),
            size=_fmt([*size, 0.0005]),
            rgba="0.97 0.97 0.97 1",
            contype="0",
            conaffinity="0",
        )


def layout_poses(task: TaskSpec, layout: Layout) -> dict[str, np.ndarray]:
    """World positions and quaternions of the target and obstacles for a layout."""

    def yaw_quat(yaw: float) -> np.ndarray:
        return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])

    return {
        "target_pos": np.array([*layout.target_xy, 0.0]),
        "target_quat": yaw_quat(layout.target_yaw),
        "obstacle_pos": np.array(
            [[x, y, task.obstacles.half_height] for x, y in layout.obstacle_xy]
        ).reshape(-1, 3),
        "obstacle_quat": np.array([yaw_quat(y) for y in layout.obstacle_yaw]).reshape(-1, 4),
    }
