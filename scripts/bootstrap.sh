#!/usr/bin/env bash
# Idempotent setup for a fresh Debian/Ubuntu machine: distro packages, the virtual environment
# (system Python + --system-site-packages so the distro's rospy imports), pinned pip packages.
# A second run installs nothing: each stage checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/check_host.sh  # Python >= 3.11 and no other ROS installation, or one line and stop

VENV=.venv
APT_PACKAGES=(
  # ROS 1 from the distribution: master, launch, rospy, the standard message packages, actionlib
  ros-core python3-rospy python3-roslaunch python3-std-msgs python3-sensor-msgs
  python3-geometry-msgs python3-std-srvs python3-actionlib python3-actionlib-msgs
  python3-genpy python3-genmsg
  # headless rendering for MuJoCo (EGL first, OSMesa as fallback)
  libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6
  # RealSense and SpaceMouse access from user space
  libusb-1.0-0 libhidapi-hidraw0 libhidapi-libusb0
  # a virtual screen for the operator windows in tests, its screenshots (xwd) and key presses
  xvfb x11-apps xdotool
  python3-venv
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing distro packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV from /usr/bin/python3 (with system site packages)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

pip_install() {  # quiet on success; on failure, the log (minus this machine's index noise) and exit
  local log; log=$(mktemp)
  if ! "$VENV/bin/pip" install "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" >&2; rm -f "$log"
    echo "bootstrap: pip install $* failed" >&2; exit 1
  fi
  rm -f "$log"
}

# pip stage: redo only when the pins or the package metadata changed
stamp="$VENV/.installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned Python packages"
  # The GUI build of OpenCV (operator windows) replaced the headless one; both would own cv2/.
  if "$VENV/bin/pip" show -q opencv-python-headless >/dev/null 2>&1; then
    "$VENV/bin/pip" uninstall -q -y opencv-python-headless
    "$VENV/bin/pip" uninstall -q -y opencv-python >/dev/null 2>&1 || true
  fi
  pip_install -r requirements.lock
  # Franka Panda MJCF + meshes only (franka_ros meshes, Apache-2.0). Its own dependencies pull
  # libfranka bindings and the dm_robotics stack, which this project does not use: no deps.
  pip_install --no-deps dm-robotics-panda==0.4.8
  pip_install --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# franka_msgs (franka_ros's message classes) for the franka backend, generated from the shipped
# definitions: the workstation needs no franka_ros (docs/ros.md, "Two machines")
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
msgs_stamp="$VENV/.franka_msgs"
msgs_want="$(cat robot/franka_msgs_gen.py robot/franka_msgs/*/* | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$msgs_stamp" 2>/dev/null)" != "$msgs_want" ] || [ ! -d "$site/franka_msgs" ]; then
  "$VENV/bin/python" -m robot.franka_msgs_gen "$site"
  echo "$msgs_want" > "$msgs_stamp"
fi
