"""The franka side without an arm: the shipped franka_msgs are franka_ros's (md5sums pinned to
the release), the robot-side safety settings are checked, and bootstrap refuses a machine with
an old Python or another ROS installation, with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robot.franka_config import (
    FrankaSafetySettings,
    RobotSetupError,
    compliance_params,
    read_settings,
)
from robot.franka_msgs_gen import DEFINITIONS, DEPENDENCY_MD5, PINNED_MD5, generate

ROOT = Path(__file__).resolve().parents[1]


def _md5_of(root: Path | None) -> dict[str, str]:
    """md5sums of the franka_msgs a fresh interpreter imports (from `root` when given)."""
    env = {**os.environ, "PYTHONPATH": str(root) if root else ""}
    code = (
        "import json; from robot.franka_msgs_gen import generated_md5 as g; print(json.dumps(g()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_generated_franka_msgs_are_wire_compatible_with_the_release(tmp_path):
    # rospy drops a connection whose md5sums differ: the shipped definitions must generate
    # exactly the classes franka_ros's release has
    assert _md5_of(generate(tmp_path)) == PINNED_MD5
    assert _md5_of(None) == PINNED_MD5  # the classes bootstrap installed, which the nodes use
    from actionlib_msgs.msg import GoalID, GoalStatus
    from std_msgs.msg import Header

    found = {c._type: c._md5sum for c in (Header, GoalID, GoalStatus)}
    assert found == DEPENDENCY_MD5  # the distribution's std_msgs/actionlib_msgs are Noetic's


def test_the_shipped_definitions_have_what_the_backend_reads():
    state = (DEFINITIONS / "msg" / "FrankaState.msg").read_text().split()
    for field in ("O_T_EE", "robot_mode", "current_errors", "last_motion_errors", "O_F_ext_hat_K"):
        assert field in state
    assert {p.name for p in (DEFINITIONS / "srv").iterdir()} == {
        "SetForceTorqueCollisionBehavior.srv",
        "SetLoad.srv",
    }


def test_safety_settings_defaults_are_valid_and_bad_ones_name_the_field():
    default = FrankaSafetySettings().check()
    assert all(
        lo <= hi for lo, hi in zip(default.contact_force, default.collision_force, strict=True)
    )
    cases = {
        "contact_force[2]": {"contact_force": (5.0, 5.0, 30.0, 5.0, 5.0, 5.0)},  # above collision
        "collision_torque": {"collision_torque": (20.0,) * 6},  # 6, not 7
        "load_com": {"load_com": (0.0, float("nan"), 0.0)},
        "load_mass": {"load_mass": 4.0},
        "translational_stiffness": {"translational_stiffness": 500.0},
    }
    for name, change in cases.items():
        with pytest.raises(RobotSetupError, match=name.replace("[", r"\[").replace("]", r"\]")):
            FrankaSafetySettings(**change).check()


def test_read_settings_takes_launch_file_text_and_yaml_lists():
    params = {
        "contact_force": "[4, 4, 4, 5, 5, 5]",  # a roslaunch <param type="str">
        "load_com": [0.0, 0.0, 0.05],  # a rosparam list
        "load_mass": "0.35",
        "rotational_stiffness": "",  # "" keeps the default
    }
    settings = read_settings(params.get)
    assert settings.contact_force == (4.0, 4.0, 4.0, 5.0, 5.0, 5.0)
    assert settings.load_com == (0.0, 0.0, 0.05) and settings.load_mass == 0.35
    assert settings.rotational_stiffness == FrankaSafetySettings.rotational_stiffness
    with pytest.raises(RobotSetupError, match="~load_mass"):
        read_settings({"load_mass": "heavy"}.get)
    with pytest.raises(RobotSetupError, match="~load_com"):
        read_settings({"load_com": "[0, 0"}.get)
    params = compliance_params("/cartesian_impedance_example_controller", settings)
    assert params == {
        "/cartesian_impedance_example_controller/dynamic_reconfigure_compliance_param_node/"
        + name: value
        for name, value in (
            ("translational_stiffness", 200.0),
            ("rotational_stiffness", 10.0),
            ("nullspace_stiffness", 0.5),
        )
    }


def _check_host(tmp_path: Path, name: str, version: str, ros_dirs=(), **env):
    """scripts/check_host.sh on a fake machine: a python3 that reports `version`, an /opt/ros
    with `ros_dirs` in it, and `env` on top of an environment without ROS variables."""
    machine = tmp_path / name
    machine.mkdir()
    fake = machine / "python3"
    major, minor = version.split(".")
    pretend = f"import sys; sys.version_info = ({major}, {minor}, 0); exec(sys.argv[1])"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{pretend}" "$2"\n')
    fake.chmod(0o755)
    prefix = machine / "opt_ros"
    prefix.mkdir()
    for d in ros_dirs:
        (prefix / d).mkdir()
    clean = {k: v for k, v in os.environ.items() if "ROS" not in k and k != "PYTHONPATH"}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_host.sh")],
        env={**clean, "FOSP_HOST_PYTHON": str(fake), "FOSP_HOST_ROS_PREFIX": str(prefix), **env},
        capture_output=True,
        text=True,
    )


def test_bootstrap_refuses_an_old_python_or_another_ros_with_one_line(tmp_path):
    ok = _check_host(tmp_path, "ok", "3.11")
    assert ok.returncode == 0 and ok.stderr == ""
    old = _check_host(tmp_path, "old", "3.8")
    assert old.returncode == 1 and old.stderr.count("\n") == 1
    assert "Python 3.8" in old.stderr and "docs/ros.md" in old.stderr
    installed = _check_host(tmp_path, "installed", "3.11", ros_dirs=("noetic",))
    assert installed.returncode == 1 and installed.stderr.count("\n") == 1
    assert "opt_ros/noetic" in installed.stderr and "docs/ros.md" in installed.stderr
    sourced_path = f"{tmp_path}/sourced/opt_ros/noetic/lib/python3/dist-packages"
    sourced = _check_host(tmp_path, "sourced", "3.12", PYTHONPATH=sourced_path)
    assert sourced.returncode == 1 and f"sourced: PYTHONPATH={sourced_path}" in sourced.stderr
