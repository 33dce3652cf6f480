"""franka_msgs without franka_ros: the Python classes of the franka_ros messages this stack uses,
generated with genpy from the definitions shipped in `robot/franka_msgs/` (copied verbatim from
franka_ros RELEASE, Apache-2.0), as catkin's message generation would on the real-time machine.

The workstation (Python >= 3.11, the distribution's ROS 1) talks to franka_control on the Noetic
real-time machine (docs/ros.md, "Two machines"). rospy connects a subscriber to a publisher only
when their md5sums agree and otherwise drops the connection with a log line nobody reads, so the
generated classes must be those of the release the real-time machine runs: `PINNED_MD5` holds
the md5sums genmsg computes from franka_ros RELEASE's own files (the definitions the backend
uses are identical from 0.9.0 through 0.10.2), and a test compares the generated ones with them.

`python -m robot.franka_msgs_gen DIR` writes the package `franka_msgs` under DIR (bootstrap
does this into the virtual environment).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

RELEASE = "0.10.1"  # franka_ros tag; commit 30e598aa6fb703cc80a203481e6427f397337b4c
DEFINITIONS = Path(__file__).resolve().parent / "franka_msgs"

# genmsg's md5sums of franka_ros RELEASE's own franka_msgs files (with Noetic's std_msgs and
# actionlib_msgs); catkin builds of that release print the same ones (FrankaState, the action and
# both services were checked against generated headers in public repositories)
PINNED_MD5 = {
    "franka_msgs/Errors": "082e9a670c96d8bc64b53e32777458e7",
    "franka_msgs/FrankaState": "431567d5df6caf4e4dd7385f25cb71ee",
    "franka_msgs/ErrorRecoveryAction": "d5a016b49f278075666fbc901debbd08",
    "franka_msgs/ErrorRecoveryGoal": "d41d8cd98f00b204e9800998ecf8427e",
    "franka_msgs/SetForceTorqueCollisionBehavior": "b1e592d1b6960bc05e6e3cba1eb02349",
    "franka_msgs/SetLoad": "c9a8ec436164dd9cbc1e5e137d358e0b",
}
# the dependencies' md5sums the above assume (Noetic's; a different std_msgs breaks them too)
DEPENDENCY_MD5 = {
    "std_msgs/Header": "2176decaecbce78abc3b96ef049fabed",
    "actionlib_msgs/GoalID": "302881f31927c1df708a2dbab0e80ee8",
    "actionlib_msgs/GoalStatus": "d388f9b87b3c471f784434d671988d4a",
}

_SEPARATOR = "\n" + "=" * 80 + "\nMSG: "


def _own_definition(msg_class: type) -> str:
    """A message's own .msg text (its _full_text minus the appended dependencies)."""
    return msg_class._full_text.split(_SEPARATOR)[0]


def _action_parts(name: str, text: str) -> dict[str, str]:
    """One .action expanded as genaction.py does: Goal/Result/Feedback and the Action wrappers."""
    goal, result, feedback = text.split("---")
    return {
        f"{name}Goal": goal,
        f"{name}Result": result,
        f"{name}Feedback": feedback,
        f"{name}ActionGoal": f"Header header\nactionlib_msgs/GoalID goal_id\n{name}Goal goal\n",
        f"{name}ActionResult": (
            f"Header header\nactionlib_msgs/GoalStatus status\n{name}Result result\n"
        ),
        f"{name}ActionFeedback": (
            f"Header header\nactionlib_msgs/GoalStatus status\n{name}Feedback feedback\n"
        ),
        f"{name}Action": (
            f"{name}ActionGoal action_goal\n{name}ActionResult action_result\n"
            f"{name}ActionFeedback action_feedback\n"
        ),
    }


def generate(out: Path, definitions: Path = DEFINITIONS) -> Path:
    """Write the Python package `franka_msgs` (msg + srv) under `out`; returns `out`."""
    from actionlib_msgs.msg import GoalID, GoalStatus
    from genpy.generate_initpy import write_modules
    from genpy.generator import MsgGenerator, SrvGenerator
    from std_msgs.msg import Header

    out = Path(out)
    work = out / ".franka_msgs_src"
    shutil.rmtree(work, ignore_errors=True)
    deps = work / "deps"
    for pkg, cls in (
        ("std_msgs", Header),
        ("actionlib_msgs", GoalID),
        ("actionlib_msgs", GoalStatus),
    ):
        (deps / pkg / "msg").mkdir(parents=True, exist_ok=True)
        (deps / pkg / "msg" / f"{cls.__name__}.msg").write_text(_own_definition(cls))
    msg_dir = work / "msg"
    msg_dir.mkdir(parents=True)
    for f in sorted((definitions / "msg").glob("*.msg")):
        (msg_dir / f.name).write_text(f.read_text())
    for action in sorted((definitions / "action").glob("*.action")):
        for msg_name, text in _action_parts(action.stem, action.read_text()).items():
            (msg_dir / f"{msg_name}.msg").write_text(text.strip() + "\n")
    search = {
        "franka_msgs": [str(msg_dir)],
        "std_msgs": [str(deps / "std_msgs" / "msg")],
        "actionlib_msgs": [str(deps / "actionlib_msgs" / "msg")],
    }
    package = out / "franka_msgs"
    shutil.rmtree(package, ignore_errors=True)
    for kind, generator, files in (
        ("msg", MsgGenerator(), sorted(msg_dir.glob("*.msg"))),
        ("srv", SrvGenerator(), sorted((definitions / "srv").glob("*.srv"))),
    ):
        target = package / kind
        if generator.generate_messages("franka_msgs", [str(f) for f in files], str(target), search):
            raise RuntimeError(f"genpy failed to generate franka_msgs/{kind}")
        write_modules(str(target))
    (package / "__init__.py").write_text(f'"""franka_msgs of franka_ros {RELEASE}, generated."""\n')
    shutil.rmtree(work)
    return out


def generated_md5(root: Path | None = None) -> dict[str, str]:
    """The md5sums of the importable franka_msgs classes named in PINNED_MD5."""
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import franka_msgs.msg as msg
    import franka_msgs.srv as srv

    found = {}
    for name in PINNED_MD5:
        short = name.split("/")[1]
        found[name] = getattr(msg, short, None) or getattr(srv, short)
    return {name: cls._md5sum for name, cls in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the franka_msgs package into")
    args = parser.parse_args(argv)
    generate(args.out)
    print(f"franka_msgs (franka_ros {RELEASE}) generated in {args.out / 'franka_msgs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
