"""The MuJoCo stand-in for the real SafeReach setup (FOSP App. D.1)."""

import os

# Headless rendering: EGL (Mesa, GPU if any) unless the user chose otherwise (osmesa, glfw).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
