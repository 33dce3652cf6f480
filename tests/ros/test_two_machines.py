"""docs/ros.md's two-machine topology, run as written: the workstation side (roscore, real.launch)
and the real-time side (the franka stand-in in place of franka_rt.launch) as two separate
process groups, each with the environment the docs export, on one master over the loopback
address. The commands come from the docs' code blocks; only the addresses, the port, the camera
(a recording instead of a serial number) and franka_rt.launch (the stand-in) are substituted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from perception.recording import record
from robot.ros_processes import REPO, RosProcesses, free_port
from robot.workspace import ControlLimits

WORKSTATION_IP, REALTIME_IP = "192.168.1.10", "192.168.1.20"
RT_LAUNCH = "roslaunch franka_rt.launch robot_ip:=172.16.0.2"


def documented_blocks() -> list[str]:
    """The bash blocks of docs/ros.md's "Two machines" section, in order."""
    text = (REPO / "docs" / "ros.md").read_text()
    section = text.split("### Two machines", 1)[1].split("\n### ", 1)[0]
    return [textwrap.dedent(b) for b in re.findall(r"```bash\n(.*?)\n\s*```", section, re.S)]


def _env(folder: Path) -> dict[str, str]:
    """This machine's environment without any ROS setting; logs in `folder`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROS_")}
    env.update(
        ROS_HOME=str(folder / "home"),
        ROS_LOG_DIR=str(folder / "log"),
        PYTHONUNBUFFERED="1",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
    )
    return env


def _lines(proc, what: str) -> list[str]:
    return [line for line in proc.log_path.read_text(errors="replace").splitlines() if what in line]


def test_the_documented_two_machine_setup_configures_and_drives_the_arm(tmp_path, wait):
    workstation, realtime, start = documented_blocks()
    assert "roscore" in workstation and RT_LAUNCH in realtime and "real.launch" in start
    port = free_port()

    def localise(block: str) -> str:
        block = block.replace(WORKSTATION_IP, "127.0.0.1").replace(REALTIME_IP, "127.0.0.1")
        # a free port instead of 11311 (roscore takes its port from -p, not ROS_MASTER_URI)
        block = block.replace(":11311", f":{port}")
        return block.replace("roscore &", f"roscore -p {port} &")

    rng = np.random.default_rng(3)
    # 640x480 as the D435 default of real.launch, so the documented crop fits
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(10)]
    recording = record(tmp_path / "table.db3", frames, 30, "rgb8")
    workstation_script = "\n".join(
        [
            localise(workstation),
            "until rosnode list >/dev/null 2>&1; do sleep 0.2; done",  # the master is up
            localise(start).replace(
                "camera_serial:=123456789012", f"playback:={recording} playback_loop:=true"
            ),
        ]
    )
    realtime_script = (
        localise(realtime)
        .replace("source /opt/ros/noetic/setup.bash", "# (Noetic: the stand-in needs none)")
        .replace(RT_LAUNCH, f"exec {sys.executable} -m tests.ros.franka_standin")
    )
    ws_procs = RosProcesses(_env(tmp_path / "ws"), tmp_path / "ws")
    rt_procs = RosProcesses(_env(tmp_path / "rt"), tmp_path / "rt")
    ws = ws_procs.start("workstation", ["bash", "-c", workstation_script])
    try:
        rt = rt_procs.start("realtime", ["bash", "-c", f"sleep 2\n{realtime_script}"])
        wait(lambda: _lines(rt, "CONTROLLER STARTED"), 90, "the controller's start", rt, rt_procs)
        log = rt.log_path.read_text().splitlines()
        order = [line for line in log if line.startswith(("SETUP", "CONTROLLER", "COMMAND"))]
        assert order[:3] == [
            "SETUP set_force_torque_collision_behavior",
            "SETUP set_load",
            "CONTROLLER STARTED",
        ], order
        # an operator on either machine can reset: here from the real-time side's shell, once
        # arm_node has advertised its services (right after the controller started)
        call = "\n".join([*_rt_exports(realtime_script), "rosservice call /fosp/reset"])
        deadline = time.monotonic() + 60
        while True:
            reset = subprocess.run(
                ["bash", "-c", call], env=_env(tmp_path / "rt"), capture_output=True, text=True,
                timeout=60, cwd=REPO,
            )  # fmt: skip
            if "success:" in reset.stdout or time.monotonic() > deadline:  # an answer
                break
            time.sleep(0.5)
        assert "success: True" in reset.stdout, reset.stdout + reset.stderr + ws_procs.log(ws)
        time.sleep(0.3)
        commands = _lines(rt, "COMMAND")
        assert commands, "the walk home reached the real-time side"
        last = np.array([float(v) for v in commands[-1].split()[1:4]])
        home = ControlLimits().workspace.home_position
        np.testing.assert_allclose(last, home, atol=0.006)
        # the whole workstation side still runs (camera_node with the documented crop too)
        assert ws.poll() is None and "Traceback" not in ws_procs.log(ws), ws_procs.log(ws)
    finally:
        rt_procs.stop_all()
        ws_procs.stop_all()
        _kill_leftovers(str(tmp_path))


def _kill_leftovers(marker: str) -> None:
    """roscore's rosmaster and rosout start sessions of their own, so stopping the workstation's
    process group leaves them running: stop every process whose command line names this test's
    folder (their __log:= argument does)."""
    import signal

    def pids() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not pids(), "processes of the two-machine test survived"


def _rt_exports(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("export ")]
