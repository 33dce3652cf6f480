"""A virtual X screen for the real OpenCV windows: Xvfb, xdotool key presses, xwd screenshots."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np


def start_xvfb(size: str = "1280x800x24") -> tuple[subprocess.Popen, str]:
    """Xvfb picks a free display itself (-displayfd) and writes its number to our pipe."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=[w],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(w)
    number = b""
    deadline = time.monotonic() + 20
    while not number.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            os.close(r)
            raise RuntimeError("Xvfb did not start")
        number += os.read(r, 16)
    os.close(r)
    return proc, f":{int(number)}"


def xdotool(display: str, *args: str, timeout: float = 20) -> str:
    out = subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"xdotool {args}: {out.stderr}")
    return out.stdout.strip()


def find_window(display: str, name: str, proc=None, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the program exited ({proc.returncode}) before its window showed")
        try:
            ids = xdotool(display, "search", "--onlyvisible", "--name", name, timeout=5)
            if ids:
                return ids.splitlines()[0]
        except RuntimeError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no window named {name!r}")


def press(display: str, window: str, *keys: str, delay_ms: int = 60) -> None:
    """Real key events through XTEST to the focused window (no window manager needed)."""
    xdotool(display, "windowfocus", "--sync", window)
    time.sleep(0.3)  # let the toolkit take the focus-in before the first key
    xdotool(display, "key", "--delay", str(delay_ms), *keys)


def screenshot(display: str) -> np.ndarray:
    """The whole screen as RGB uint8 (xwd -root, parsed here: XWD is a plain header + pixels)."""
    raw = subprocess.run(
        ["xwd", "-root", "-silent", "-display", display], capture_output=True, check=True
    ).stdout
    return parse_xwd(raw)


def parse_xwd(raw: bytes) -> np.ndarray:
    header = np.frombuffer(raw[:100], ">u4")
    header_size, version = int(header[0]), int(header[1])
    assert version == 7, f"XWD version {version}"
    width, height = int(header[4]), int(header[5])
    byte_order, bpp, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks = [int(m) for m in header[14:17]]
    ncolors = int(header[19])
    assert bpp in (24, 32), f"expected a TrueColor screen, got {bpp} bits per pixel"
    start = header_size + 12 * ncolors
    data = np.frombuffer(raw, np.uint8, height * bytes_per_line, start).reshape(height, -1)
    nbytes = bpp // 8
    b = data[:, : width * nbytes].reshape(height, width, nbytes).astype(np.uint32)
    if byte_order != 0:  # MSBFirst
        b = b[:, :, ::-1]
    pixels = sum(b[:, :, i] << (8 * i) for i in range(nbytes))  # LSB first
    out = np.empty((height, width, 3), np.uint8)
    for i, mask in enumerate(masks):
        shift = (mask & -mask).bit_length() - 1
        out[:, :, i] = (pixels >> shift) & 0xFF
    return out


def locate(screen_rgb: np.ndarray, template_rgb: np.ndarray) -> tuple[tuple[int, int], float]:
    """Where `template` appears on the screen (top-left x, y) and how well it matches (0..1)."""
    import cv2

    result = cv2.matchTemplate(screen_rgb, template_rgb, cv2.TM_CCORR_NORMED)
    _, score, _, where = cv2.minMaxLoc(result)
    return where, float(score)


def count_color(region_rgb: np.ndarray, rgb: tuple[int, int, int], tol: int = 30) -> int:
    diff = np.abs(region_rgb.astype(int) - np.array(rgb)).max(axis=2)
    return int((diff <= tol).sum())
