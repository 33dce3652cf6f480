"""Flags and ROS parameters generated from the typed configs (fosp/config_flags.py)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from fosp.config_flags import add_flags, field_help, from_params, values
from fosp.errors import UserError
from policy.config import FinetuneConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_flags(p, FinetuneConfig)
    return p


def test_every_finetune_field_is_a_flag_with_its_comment_as_help():
    text = parser().format_help()
    for f in dataclasses.fields(FinetuneConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
        assert field_help(FinetuneConfig)[f.name], f"{f.name} has no comment"
    assert "K gradient steps after each online episode" in text


def test_unset_flags_keep_the_dataclass_defaults_and_set_ones_override():
    assert FinetuneConfig(**values(parser().parse_args([]), FinetuneConfig)) == FinetuneConfig()
    args = parser().parse_args(
        ["--updates-per-episode", "7", "--selection", "step", "--no-sample-actions",
         "--online-share", "0.25"]
    )  # fmt: skip
    cfg = FinetuneConfig(**values(args, FinetuneConfig))
    assert (cfg.updates_per_episode, cfg.selection, cfg.sample_actions) == (7, "step", False)
    assert cfg.online_share == 0.25 and cfg.strategy == FinetuneConfig.strategy == "direct"


@pytest.mark.parametrize(
    "argv",
    [["--strategy", "banana"], ["--updates-per-episode", "0"], ["--inv-temperature", "nan"],
     ["--online-share", "1.5"], ["--label-delay", "-1"]],
)  # fmt: skip
def test_bad_values_are_refused(argv):
    with pytest.raises(argparse.ArgumentError, match=argv[0]):
        parser().parse_args(argv)


def test_ros_parameters_typed_checked_and_empty_means_unset():
    params = {"updates_per_episode": "12", "strategy": "pex", "init": "", "seed": 3,
              "sample_actions": "false"}  # fmt: skip
    cfg = FinetuneConfig(**from_params(FinetuneConfig, params.get))
    assert (cfg.updates_per_episode, cfg.strategy, cfg.init, cfg.seed) == (12, "pex", "copy", 3)
    assert cfg.sample_actions is False
    with pytest.raises(UserError, match="~strategy: 'banana' is not one of pex, direct"):
        from_params(FinetuneConfig, {"strategy": "banana"}.get)
    with pytest.raises(UserError, match="~updates_per_episode"):
        from_params(FinetuneConfig, {"updates_per_episode": "-4"}.get)


def test_train_flags_override_the_preset_field_by_field():
    from fosp.cli import build_parser
    from policy.cli import config_from_args
    from policy.config import PRESETS

    argv = ["train", "--dataset", "d", "--steps", "5", "--out", "o", "--preset", "small",
            "--agent.beta-r", "3", "--batch", "4", "--no-agent.ref-imagined",
            "--optim.lr-model", "1e-3"]  # fmt: skip
    cfg = config_from_args(build_parser().parse_args(argv))
    small = PRESETS["small"]
    assert cfg.agent.beta_r == 3 and cfg.agent.ref_imagined is False
    assert cfg.train.batch == 4 and cfg.optim.lr_model == 1e-3
    assert cfg.agent.settle_steps == small.agent.settle_steps  # unset: the preset's
    assert cfg.model == small.model and cfg.train.length == small.train.length


def test_node_parameters_default_to_the_configs_they_feed_and_bad_ones_name_themselves():
    from perception.camera_node import ImageOutput
    from perception.realsense import CameraConfig
    from robot.arm_controller import ControllerConfig
    from robot.arm_node import ArmNodeParams
    from robot.safety import SafetyConfig

    params = ArmNodeParams(**from_params(ArmNodeParams, {}.get))
    controller = ControllerConfig()
    for name in ("control_hz", "tick", "home_timeout", "auto_recover", "full_image_size"):
        assert getattr(params, name) == getattr(controller, name), name
    assert params.watchdog_timeout == SafetyConfig().watchdog_timeout
    launched = {"backend": "franka", "seed": -1, "control_hz": 20, "auto_recover": "false"}
    params = ArmNodeParams(**from_params(ArmNodeParams, launched.get))
    assert (params.backend, params.seed, params.control_hz, params.auto_recover) == (
        "franka", -1, 20.0, False,
    )  # fmt: skip
    for bad in ({"backend": "ur5"}, {"control_hz": 0}, {"watchdog_timeout": "soon"}):
        with pytest.raises(UserError, match=f"~{next(iter(bad))}: "):
            from_params(ArmNodeParams, bad.get)
    # camera_node: a rosparam list and an empty launch arg both reach parse_roi as text
    given = {"crop": [160, 60, 320, 320], "width": 848, "loop": True, "size": ""}
    assert CameraConfig(**from_params(CameraConfig, given.get)).width == 848
    out = ImageOutput(**from_params(ImageOutput, given.get))
    assert (out.crop, out.size) == ("[160, 60, 320, 320]", 64)
    with pytest.raises(UserError, match="~fps: "):
        from_params(CameraConfig, {"fps": "thirty"}.get)
