"""SpaceMouse -> robot action through the real reader: pyspacemouse 2.x + easyhid decode raw HID
reports from the fake hidapi (fake_hid.py); only the C library is replaced. Physical gestures in,
robot base-frame actions out: axis signs and frames, deadzone, clamping, buttons -> label events,
and the advice given when there is no device, no permission or no HID library."""

from __future__ import annotations

import numpy as np
import pytest
from fake_hid import FakeSpaceMouse, install
from hypothesis import given, settings
from hypothesis import strategies as st

from data_collection.teleop.base import FakeClock, LabelEvent, TeleopError
from data_collection.teleop.keyboard import KeyboardTeleop
from data_collection.teleop.keys import key_name
from data_collection.teleop.labels import LiveLabels
from data_collection.teleop.mapping import AxisMapper, MappingConfig, apply_deadzone
from data_collection.teleop.spacemouse import SpaceMouseConfig, SpaceMouseTeleop

NO_SMOOTHING = MappingConfig(smoothing=0.0, deadzone=0.1, rotation_gain=0.5)


def opened(monkeypatch, model="SpaceMouseCompact", mapping=NO_SMOOTHING, **cfg):
    device = FakeSpaceMouse(model)
    install(monkeypatch, [device])
    teleop = SpaceMouseTeleop(SpaceMouseConfig(mapping=mapping, **cfg), FakeClock())
    teleop.start()
    return device, teleop


def command(device, teleop, **gesture) -> np.ndarray:
    device.move(**gesture)
    device.wait_consumed()
    return teleop.action()


# default placement "facing": the operator across the table, facing the arm
FACING = [
    # gesture -> expected action [x, y, z, rx, ry, rz] in the robot base frame
    ({"away": 1.0}, [-1, 0, 0, 0, 0, 0]),  # push away from you: towards the robot base
    ({"away": -1.0}, [1, 0, 0, 0, 0, 0]),  # pull towards you: towards you
    ({"right": 1.0}, [0, 1, 0, 0, 0, 0]),  # your right = the robot's left (+y)
    ({"up": 1.0}, [0, 0, 1, 0, 0, 0]),  # lift: up
    ({"up": -1.0}, [0, 0, -1, 0, 0, 0]),
    ({"twist_ccw": 1.0}, [0, 0, 0, 0, 0, 0.5]),  # counter-clockwise from above: +rz
    ({"tilt_right": 1.0}, [0, 0, 0, 0, 0.5, 0]),  # about your right axis = base +y
    ({"tilt_away": 1.0}, [0, 0, 0, -0.5, 0, 0]),  # about the away axis = base -x
]


@pytest.mark.parametrize("model", ["SpaceMouseCompact", "SpaceMouseWireless"])
def test_axis_signs_and_frame_facing_the_arm(monkeypatch, model):
    device, teleop = opened(monkeypatch, model)
    try:
        assert device.opened == 1
        for gesture, expected in FACING:
            np.testing.assert_allclose(command(device, teleop, **gesture), expected, atol=1e-6)
        assert teleop.reports >= len(FACING)
    finally:
        teleop.stop()
    assert device.closed == 1


def test_other_placements_rotate_the_frame(monkeypatch):
    device, teleop = opened(monkeypatch, mapping=MappingConfig(yaw_deg=-90.0, smoothing=0.0))
    try:  # behind the robot, looking where it looks: away = +x, right = -y
        np.testing.assert_allclose(command(device, teleop, away=1.0)[:3], [1, 0, 0], atol=1e-6)
        np.testing.assert_allclose(command(device, teleop, right=1.0)[:3], [0, -1, 0], atol=1e-6)
        np.testing.assert_allclose(command(device, teleop, up=1.0)[:3], [0, 0, 1], atol=1e-6)
    finally:
        teleop.stop()


def test_deadzone_gain_and_clamping(monkeypatch):
    mapping = MappingConfig(deadzone=0.1, translation_gain=2.0, smoothing=0.0)
    device, teleop = opened(monkeypatch, mapping=mapping)
    try:
        # inside the deadzone: a resting hand commands nothing
        np.testing.assert_array_equal(command(device, teleop, right=0.08, away=-0.05), 0.0)
        # outside: rescaled from the deadzone edge, times the gain
        a = command(device, teleop, right=0.3)
        assert a[1] == pytest.approx(2.0 * (0.3 - 0.1) / 0.9, abs=2e-3)
        # beyond full scale (the cap reads up to ~±500 counts) and gain 2: clamped to 1
        device.move_raw([0, -520, 600, 0, 0, 0])  # hard away + hard down
        device.wait_consumed()
        a = teleop.action()
        np.testing.assert_allclose(a[:3], [-1, 0, -1], atol=1e-6)
        assert np.abs(a).max() <= 1.0 and a.dtype == np.float32
    finally:
        teleop.stop()


def test_smoothing_and_reset():
    mapper = AxisMapper(MappingConfig(smoothing=0.5, deadzone=0.0))
    full = np.array([1.0, 0, 0, 0, 0, 0])
    outs = [mapper(full)[1] for _ in range(4)]  # "right" -> base +y
    np.testing.assert_allclose(outs, [0.5, 0.75, 0.875, 0.9375])
    mapper.reset()
    assert mapper(np.zeros(6)).max() == 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=6, max_size=6),
    st.floats(-180, 180),
    st.floats(0, 0.9),
    st.floats(0, 5),
    st.floats(0, 0.95),
)
def test_mapping_always_within_the_action_space(device, yaw, deadzone, gain, smoothing):
    cfg = MappingConfig(yaw, deadzone, gain, gain, False, smoothing)
    mapper = AxisMapper(cfg)
    for _ in range(3):
        a = mapper(np.array(device))
        assert a.shape == (6,) and np.all(np.abs(a) <= 1.0)


def test_base_to_device_inverts_the_mapping():
    mapper = AxisMapper(MappingConfig(smoothing=0.0))
    rng = np.random.default_rng(0)
    for _ in range(50):
        action = rng.uniform(-0.4, 0.4, 6)
        np.testing.assert_allclose(mapper.raw_to_base(mapper.base_to_device(action)), action)
    assert np.all(apply_deadzone(np.array([0.05, -0.09]), 0.1) == 0)


def test_buttons_become_label_events(monkeypatch):
    device, teleop = opened(monkeypatch)
    try:
        assert teleop.bindings == {"cost": "LEFT", "reward": "RIGHT"}
        device.button("LEFT", True)  # cost: each press toggles
        device.button("LEFT", False)
        device.button("RIGHT", True)  # reward: on while held
        device.move(right=0.5)  # axis reports between button reports change nothing
        device.button("RIGHT", False)
        device.button("LEFT", True)
        device.wait_consumed()
        events = teleop.events()
        assert [(e.label, e.action) for e in events] == [
            ("cost", "toggle"),
            ("reward", "on"),
            ("reward", "off"),
            ("cost", "toggle"),
        ]
        assert {e.source for e in events} == {"spacemouse"}
        assert teleop.events() == []  # drained
        labels = LiveLabels()  # -> rows: cost on, then off again; reward on for one step
        for e in events[:2]:
            labels.apply(e, row=1)
        assert labels.close_row() == (1.0, 1.0)
        for e in events[2:]:
            labels.apply(e, row=2)
        assert labels.close_row() == (0.0, 0.0)
    finally:
        teleop.stop()


def test_buttons_are_configurable(monkeypatch):
    device, teleop = opened(monkeypatch, cost_button="RIGHT", reward_button="LEFT")
    try:
        device.button("RIGHT", True)
        device.wait_consumed()
        assert [(e.label, e.action) for e in teleop.events()] == [("cost", "toggle")]
    finally:
        teleop.stop()
    device = FakeSpaceMouse()
    install(monkeypatch, [device])
    with pytest.raises(TeleopError, match="no button 'MENU'.*LEFT"):
        SpaceMouseTeleop(SpaceMouseConfig(cost_button="MENU")).start()


def test_no_device_says_what_to_do(monkeypatch):
    install(monkeypatch, [])
    with pytest.raises(TeleopError, match="No SpaceMouse found.*lsusb.*--teleop keyboard"):
        SpaceMouseTeleop().start()


def test_no_permission_gives_the_udev_rule(monkeypatch):
    install(monkeypatch, [FakeSpaceMouse()], openable=False)
    with pytest.raises(TeleopError) as err:
        SpaceMouseTeleop().start()
    text = str(err.value)
    assert "cannot be opened" in text and "/etc/udev/rules.d/99-spacemouse.rules" in text
    assert 'KERNEL=="hidraw*", ATTRS{idVendor}=="256f"' in text and "plugdev" in text


def test_no_hid_library_names_the_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyspacemouse", None)  # import fails as without hidapi
    with pytest.raises(TeleopError, match="libhidapi-hidraw0"):
        SpaceMouseTeleop().start()


def test_unplugged_device_stops_the_episode(monkeypatch):
    device, teleop = opened(monkeypatch)
    try:

        def gone(size):
            raise OSError("device disconnected")

        device.read = gone
        device.push(b"\x01")
        import time

        deadline = time.monotonic() + 5
        while teleop._error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(TeleopError, match="reader stopped"):
            teleop.action()
    finally:
        teleop.stop()


def test_keyboard_teleop_holds_keys_then_stops():
    clock = FakeClock()
    kb = KeyboardTeleop(clock=clock)
    assert kb.press("w")  # away from the operator (facing): towards the base, -x
    np.testing.assert_allclose(kb.action()[:3], [-0.6, 0, 0], atol=1e-6)
    assert kb.press("D")  # shift: full speed, to the operator's right = +y
    np.testing.assert_allclose(kb.action()[:3], [-0.6, 1.0, 0], atol=1e-6)
    clock.sleep(0.2)
    kb.press("r")
    np.testing.assert_allclose(kb.action()[:3], [-0.6, 1.0, 0.6], atol=1e-6)
    clock.sleep(0.2)  # w and D released (no repeat) 0.4 s ago > hold 0.35 s
    np.testing.assert_allclose(kb.action()[:3], [0, 0, 0.6], atol=1e-6)
    kb.press("space")
    assert not kb.action().any()
    assert not kb.press("c")  # label keys are not motion keys


def test_live_labels_rows():
    labels = LiveLabels()
    ev = lambda label, action: LabelEvent(label, action, 0.0)  # noqa: E731
    labels.apply(ev("cost", "toggle"), 1)
    labels.apply(ev("cost", "toggle"), 1)  # on and off within one step: still counted
    assert labels.close_row() == (0.0, 1.0)
    assert labels.close_row() == (0.0, 0.0)
    labels.apply(ev("reward", "mark"), 3)
    assert labels.close_row() == (1.0, 0.0)
    assert labels.close_row() == (0.0, 0.0)
    labels.apply(ev("reward", "on"), 5)
    assert labels.close_row() == (1.0, 0.0)
    assert labels.close_row() == (1.0, 0.0)  # held
    labels.apply(ev("reward", "off"), 7)
    assert labels.close_row() == (0.0, 0.0)  # released before the row arrived
    assert [e["row"] for e in labels.log] == [1, 1, 3, 5, 7]


def test_key_names_across_backends():
    assert key_name(-1) is None
    assert key_name(ord("c")) == "c" and key_name(ord("C")) == "C"
    assert key_name(0x1000012) == "left" and key_name(0xFF53) == "right"  # Qt, GTK
    assert key_name(27) == "esc" and key_name(13) == "enter" and key_name(32) == "space"
    assert key_name(8) == "backspace" and key_name(0x1000003) == "backspace"
