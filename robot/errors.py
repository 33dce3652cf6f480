"""What the ROS env raises, without rospy: the collector and the policy runner catch these by
type whatever env they drive (an in-process one never raises them)."""

from __future__ import annotations


class StaleObservationError(RuntimeError):
    """No fresh observation arrived in time; the arm was asked to hold."""


class ArmStopped(RuntimeError):
    """reset refused or interrupted: the e-stop is latched, or a stop ended the walk home.
    `stamp`: ROS time before the reset was asked for (a release after it lets the caller go on)."""

    def __init__(self, message: str, stamp: float = 0.0):
        super().__init__(message)
        self.stamp = stamp


class ArmOutsideBox(RuntimeError):
    """reset refused: the measured TCP is outside the hard box, and nothing is commanded from
    there. A user error (one line): the operator brings the arm over the task area."""
