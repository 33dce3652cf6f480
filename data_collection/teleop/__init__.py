"""Operator input and output for data collection: SpaceMouse and keyboard teleoperation, live
label events, the OpenCV operator window and its drawing helpers."""

from data_collection.teleop.base import LabelEvent, Teleop, TeleopError
from data_collection.teleop.mapping import PLACEMENTS, AxisMapper, MappingConfig

__all__ = ["PLACEMENTS", "AxisMapper", "LabelEvent", "MappingConfig", "Teleop", "TeleopError"]
