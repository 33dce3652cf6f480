"""ROS policy node: the finetuning loop (policy/finetune.py) over `RosSafeReachEnv`, against
sim.launch or real.launch (launch/deploy.launch starts both).

Each control step runs one inference (both proposals and eq. 21's choice). If it takes longer
than the control deadline, the arm is asked to hold (`env.hold()`), a zero action (no motion) is
sent and stored instead, the world model is told the arm did not move, and the miss is counted
(episode metadata "deadline_misses", the per-episode log line and rospy's log).

The operator's stop wins: when the arm is e-stopped, held by someone else (the hold service) or
stops on a reflex during an episode, the episode ends there. It is stored marked
(`status: "aborted"`, `interrupted: "estop" | "hold" | "reflex"`) under RUN2/interrupted/, never in
RUN2/online/, so it is never trained on (an operator may label it and put it in a dataset of
their own), and the node waits, saying so every 30 s, until an operator releases the arm
(`rosservice call /fosp/release_estop`); then the same episode index (same layout) is recorded
again. Nothing here releases by itself. A stale observation (StaleObservationError) drops the
take and records that episode again; more than MAX_STALE in a row end the run with one line.

Labels: over sim.launch the arm node publishes the simulator's ground truth; the simulated
operator (that truth delayed `label_delay` steps, as in data_collection/scripted.py) labels the
episode and the truth is stored beside. On the real arm (no labels on the topic) the operator
labels each episode in the labeler window before it joins the dataset.

    rosrun fosp_robot policy_node _checkpoint:=RUN _dataset:=DATA _out:=RUN2 _episodes:=40
    (or: fosp finetune --env ros --checkpoint RUN --dataset DATA --out RUN2 --episodes 40)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from data_collection.dataset import Dataset
from data_collection.episode import Episode, read_episode, write_episode
from data_collection.rollout import SimulatedOperatorLabels, Step, rollout
from fosp.config_flags import from_params
from fosp.errors import UserError
from policy.config import FinetuneConfig
from policy.finetune import OPERATOR, Finetuner, layout_seed, with_executed
from policy.strategy import FinetuneStrategy

INTERRUPTED_DIR = "interrupted"  # RUN2/interrupted: stopped episodes, kept out of training
MAX_STALE = 3  # takes in a row lost to stale observations before the run stops


class RosRunError(UserError, ValueError):
    """The ROS side is missing or keeps failing: one line for the operator."""


def check_master() -> str:
    """The ROS master's URI; RosRunError at once when none answers (rospy would wait forever)."""
    import os

    import rosgraph

    uri = os.environ.get("ROS_MASTER_URI", "http://localhost:11311")
    if not rosgraph.is_master_online(uri):
        raise RosRunError(
            f"no ROS master at {uri}: start the robot side first (`roslaunch fosp_robot "
            "sim.launch`, or real.launch on the arm; docs/ros.md)"
        )
    return uri


class RosCollector:
    """One online episode over ROS with the strategy's policy and a control deadline."""

    def __init__(
        self,
        env,
        task: str,
        seed: int,
        label_delay: int = 2,
        labels: str = "auto",
        deadline: float | None = None,
        staging: Path | None = None,
        log: Callable[[str], None] = print,
        interrupted: Path | None = None,
        takeover=None,
        suggest: Callable[[Episode], dict[str, np.ndarray]] | None = None,
    ):
        """`takeover`: a data_collection.takeover.Takeover (the operator's SpaceMouse), or None;
        `suggest`: label suggestions beside the contact force's (policy.label_model), or None."""
        if labels not in ("auto", "env", "labeler"):
            raise ValueError("labels must be auto, env or labeler")
        self.env, self.task, self.seed = env, task, seed
        self.label_delay, self.labels = label_delay, labels
        self.deadline = env.period if deadline is None else float(deadline)
        self.staging = staging
        self.log = log
        self.misses_total = 0
        self.inference_s: list[float] = []
        self.interrupted = Dataset(interrupted or Path(INTERRUPTED_DIR))
        self.stopped: list[Path] = []  # interrupted episodes stored in this run
        self.takeover = takeover
        self.suggest = suggest
        self.view = None
        if takeover is not None:
            from data_collection.takeover import ControlWindow

            self.view = ControlWindow(log=log)
        self._stale = 0

    def collect(self, strategy: FinetuneStrategy, index: int) -> Episode:
        """One complete episode; stopped and stale takes are recorded again (same layout)."""
        from robot.ros_env import ArmStopped, StaleObservationError

        while True:
            try:
                episode, stop = self._take(strategy, index)
            except ArmStopped as err:  # reset refused (e-stop latched) or interrupted
                self.env.wait_for_release(err.stamp, str(err), self.log)
                continue
            except StaleObservationError as err:
                self._stale += 1
                if self._stale > MAX_STALE:
                    raise RosRunError(
                        f"{self._stale} takes in a row lost to stale observations; last: {err}"
                    ) from err
                self.log(f"{err}\nepisode {index} dropped; recording it again (same layout)")
                continue
            self._stale = 0
            if not stop:
                return episode
            kind, stamp = stop
            path = self.interrupted.add(episode)
            self.stopped.append(path)
            self.log(
                f"{kind} during episode {index} (step {episode.metadata['interrupted_at_step']}"
                f"): stopped, stored as interrupted in {path} (not trained on)"
            )
            self.env.wait_for_release(stamp, f"{kind} during episode {index}", self.log)

    def _take(self, strategy: FinetuneStrategy, index: int) -> tuple[Episode, tuple | None]:
        """One recording; (episode, None) when complete, (marked episode, (kind, stamp)) when
        the operator's stop ended it."""
        env = self.env
        seed = layout_seed(self.seed, index)
        counts, misses, sources = [0, 0], 0, set()
        acted_by: list[int] = []  # the actor of each step; -1: held after a deadline miss
        p_offline: list[float] = []
        state: dict | None = None

        def act(obs: dict) -> np.ndarray:
            nonlocal state, misses
            start = time.perf_counter()
            action, new_state, info = strategy.act(obs, state, not strategy.cfg.sample_actions)
            elapsed = time.perf_counter() - start
            self.inference_s.append(elapsed)
            if elapsed > self.deadline:
                # too late for this control tick: hold the arm, execute (and store) no motion
                env.hold()
                misses += 1
                action = np.zeros_like(action)
                acted_by.append(-1)
                new_state = {**new_state, "action": torch.zeros_like(new_state["action"])}
                self.log(
                    f"deadline miss: inference {1000 * elapsed:.0f} ms > "
                    f"{1000 * self.deadline:.0f} ms, arm held (episode {index}, miss {misses})"
                )
            else:
                counts[info["policy"]] += 1
                acted_by.append(int(info["policy"]))
                if "probs" in info:
                    p_offline.append(float(info["probs"][0]))
            state = new_state
            return action

        def executed(action: np.ndarray) -> None:  # the operator's action ran instead
            nonlocal state
            state = with_executed(state, action)
            if acted_by[-1] in (0, 1):
                counts[acted_by[-1]] -= 1
            acted_by[-1] = OPERATOR

        act.executed = executed  # type: ignore[attr-defined]

        view = self.view

        def note_source(step: Step) -> str:
            sources.add(step.info["labels_source"])
            if view is not None:  # who is in control, for the operator holding the SpaceMouse
                view.update(
                    step.obs["image"], self.takeover.in_control, step.row, env.episode_steps
                )
            return ""

        metadata = {
            "task": self.task,
            "layout_seed": int(seed),
            "control_hz": round(1.0 / env.period, 6),
            "label_source": "simulated-operator",
            "label_delay_steps": int(self.label_delay),
            "env": "ros",
        }

        def set_layout(obs: dict, info: dict) -> None:  # the layout the arm node reports
            if env.layout_seed is not None:
                metadata["layout_seed"] = int(env.layout_seed)

        labelled = SimulatedOperatorLabels(env, self.label_delay)
        result = rollout(
            labelled, act, metadata, options={"layout_seed": seed}, on_step=note_source,
            on_reset=set_layout, takeover=self.takeover,
        )  # fmt: skip
        episode = result.episode
        if episode.interventions:
            self.log(
                f"episode {index}: {episode.interventions} takeovers, the operator executed "
                f"{int(episode.operator_steps.sum())} of {episode.num_actions} actions"
            )
        episode.metadata.update(policy_counts=counts, acted_by=acted_by, deadline_misses=misses)
        if result.stop:
            if sources != {"sim"}:  # the real arm: zeros, not a truth
                for field in ("oracle_reward", "oracle_cost"):
                    episode.steps.pop(field, None)
            return episode, (result.stop, result.info["stop_stamp"])
        self.misses_total += misses
        if p_offline:
            episode.metadata["p_offline_mean"] = float(np.mean(p_offline))
        use_env = self.labels == "env" or (self.labels == "auto" and sources == {"sim"})
        if not use_env:
            episode = self._label_in_window(episode)
        return episode, None

    def _label_in_window(self, episode: Episode) -> Episode:
        """The operator labels the episode in the labeler window (data_collection/labeler.py);
        no ground truth exists on the real arm, so none is stored. Cost is suggested from the
        arm's contact force; the world model's heads only with `label_suggestions = force+model`
        (measured: its reward rows cost the operator more keys to correct than they save, its
        cost head is too weak; docs/collecting.md, "Suggested labels")."""
        from data_collection.labeler import LabelSession, run_labeler
        from data_collection.teleop.window import CvWindow

        for field in ("oracle_reward", "oracle_cost"):
            episode.steps.pop(field, None)
        for field in ("reward", "cost"):
            episode.steps[field] = np.zeros_like(episode.steps[field])
        episode.metadata.update(label_source="manual", label_delay_steps=0)
        staging = self.staging or Path("labeling")
        path = write_episode(episode, staging)
        window = CvWindow("fosp finetune: label the episode")
        session = run_labeler(LabelSession([path], suggest=self.suggest), window)
        labelled = read_episode(session.path)
        path.unlink()
        return labelled


def finetune_ros(
    checkpoint: str | Path,
    out: str | Path,
    episodes: int,
    fcfg: FinetuneConfig,
    dataset: str | Path | None = None,
    task: str = "unseen-1",
    namespace: str = "/fosp",
    labels: str = "auto",
    deadline: float | None = None,
    stale_grace: float | None = None,
    log: Callable[[str], None] = print,
) -> Finetuner:
    """The finetuning loop over ROS (arm_node of sim.launch / real.launch must be running).
    The master and arm_node are checked before anything is written."""
    import rospy

    from robot.ros_env import RosSafeReachEnv, ensure_node

    check_master()
    ensure_node("fosp_finetune")
    try:
        env = RosSafeReachEnv(namespace, stale_grace=stale_grace)
    except (rospy.ROSException, TimeoutError) as err:
        raise RosRunError(f"{err}: is arm_node running in {namespace}? (docs/ros.md)") from err
    device = None
    try:
        tuner = Finetuner(checkpoint, out, task, fcfg, dataset, log=log)
        takeover, device = _takeover(tuner.fcfg.takeover)
        collector = RosCollector(
            env, task, tuner.fcfg.seed, tuner.fcfg.label_delay, labels, deadline,
            Path(out) / "labeling", log, Path(out) / INTERRUPTED_DIR, takeover,
            label_suggester(tuner),
        )  # fmt: skip
        tuner.run(collector, episodes)
    finally:
        if device is not None:
            device.stop()
        env.close()
    times = np.asarray(collector.inference_s or [0.0]) * 1000
    log(
        f"inference: median {np.median(times):.1f} ms, max {times.max():.1f} ms, deadline "
        f"{1000 * collector.deadline:.0f} ms, misses {collector.misses_total}"
    )
    return tuner


def label_suggester(tuner: Finetuner):
    """The world model's suggestions for the labelling window (the agent being finetuned, so
    each episode is read by the latest model), or None (`label_suggestions = force`)."""
    if tuner.fcfg.label_suggestions != "force+model":
        return None
    from policy.label_model import model_suggestions

    return model_suggestions(tuner.agent)


def _takeover(kind: str):
    """(Takeover, device to stop) for --takeover on the arm: spacemouse opens the operator's
    SpaceMouse (any deflection takes over); scripted needs the in-process sim's ground truth."""
    if kind == "none":
        return None, None
    if kind == "scripted":
        raise RosRunError("--takeover scripted needs --env sim (it reads the simulator's truth)")
    from data_collection.takeover import TeleopTakeover
    from data_collection.teleop.base import TeleopError
    from data_collection.teleop.spacemouse import SpaceMouseTeleop

    device = SpaceMouseTeleop()
    try:
        device.start()
    except TeleopError as err:
        raise RosRunError(f"--takeover spacemouse: {err}") from err
    return TeleopTakeover(device), device


def main() -> int:
    """`rosrun fosp_robot policy_node` / deploy.launch: parameters from the private namespace."""
    import rospy

    from policy.train import set_threads
    from robot.errors import ArmOutsideBox
    from robot.ros_env import ensure_node

    ensure_node("policy_node")
    set_threads()
    p = lambda name, default=None: rospy.get_param(f"~{name}", default)  # noqa: E731
    try:  # every FinetuneConfig field is a private parameter; unset ones keep the defaults
        fcfg = FinetuneConfig(**from_params(FinetuneConfig, p))
    except UserError as err:
        rospy.logerr(f"policy_node: {err}")
        return 1
    deadline = float(p("deadline", 0.0)) or None
    grace = float(p("stale_grace", 0.0)) or None
    try:
        tuner = finetune_ros(
            p("checkpoint"),
            p("out"),
            int(p("episodes", 40)),
            fcfg,
            p("dataset") or None,
            task=p("task", "unseen-1"),
            namespace=p("namespace", "/fosp"),
            labels=p("labels", "auto"),
            deadline=deadline,
            stale_grace=grace,
            log=rospy.loginfo,
        )
    except (UserError, ArmOutsideBox) as err:  # a bad input, or the arm parked out of the box
        rospy.logerr(f"policy_node: {err}")
        return 1
    s = tuner.summary()
    rospy.loginfo(
        f"policy_node done: {s['episodes']} episodes, {s['successes']} successes, "
        f"{s['violations']} violations"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
