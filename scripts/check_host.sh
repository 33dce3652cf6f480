#!/usr/bin/env bash
# Stops bootstrap, with one line, on a machine this stack must not be installed on: a Python
# older than 3.11, or another ROS 1 installation (the ROS project's /opt/ros/<distro>, installed
# or sourced) whose packages would mix with the distribution's ROS 1 this stack installs.
# The lab's Noetic real-time machine is such a machine: it runs franka_control only, this stack
# runs on a workstation (docs/ros.md, "Two machines"). Paths overridable for the tests.
set -euo pipefail
PYTHON=${FOSP_HOST_PYTHON:-/usr/bin/python3}
ROS_PREFIX=${FOSP_HOST_ROS_PREFIX:-/opt/ros}
RECIPE="see docs/ros.md, \"Two machines\""

if ! version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then
  echo "bootstrap: no Python at $PYTHON (install python3 >= 3.11; $RECIPE)" >&2; exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: $PYTHON is Python $version, this stack needs >= 3.11: on a ROS Noetic machine" \
    "run franka_control only and this stack on a workstation ($RECIPE)" >&2
  exit 1
fi
sourced=""
for var in ROS_ETC_DIR ROS_ROOT ROS_PACKAGE_PATH CMAKE_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH; do
  case ":${!var:-}:" in *"$ROS_PREFIX"*) sourced="$var=${!var}"; break ;; esac
done
installed=$(find "$ROS_PREFIX" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1 || true)
if [ -n "$sourced" ] || [ -n "$installed" ]; then
  where=${installed:-$ROS_PREFIX}; [ -n "$sourced" ] && where="$where (sourced: $sourced)"
  echo "bootstrap: another ROS installation at $where: this stack installs the distribution's" \
    "ROS 1 and must not mix with it; run it on a workstation without $ROS_PREFIX ($RECIPE)" >&2
  exit 1
fi
