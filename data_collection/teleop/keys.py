"""OpenCV key codes -> names, the same on every HighGUI backend.

cv2.waitKeyEx returns the backend's own code for non-ASCII keys (Qt: 0x10000xx, GTK/X11: keysyms
0xff51.., Windows: virtual-key codes << 16). Everything the tools bind goes through `key_name`.
"""

from __future__ import annotations

_SPECIAL = {
    # Qt (opencv-python's Linux wheels)
    0x1000012: "left",
    0x1000013: "up",
    0x1000014: "right",
    0x1000015: "down",
    0x1000016: "pageup",
    0x1000017: "pagedown",
    0x1000010: "home",
    0x1000011: "end",
    0x1000000: "esc",
    0x1000003: "backspace",
    0x1000004: "enter",
    0x1000005: "enter",
    0x1000007: "delete",
    # GTK / X11 keysyms
    0xFF51: "left",
    0xFF52: "up",
    0xFF53: "right",
    0xFF54: "down",
    0xFF55: "pageup",
    0xFF56: "pagedown",
    0xFF50: "home",
    0xFF57: "end",
    0xFFFF: "delete",
    # Windows
    0x250000: "left",
    0x260000: "up",
    0x270000: "right",
    0x280000: "down",
    0x210000: "pageup",
    0x220000: "pagedown",
    0x240000: "home",
    0x230000: "end",
    0x2E0000: "delete",
    # ASCII controls
    27: "esc",
    13: "enter",
    10: "enter",
    8: "backspace",
    127: "backspace",
    9: "tab",
    32: "space",
}


def key_name(code: int) -> str | None:
    """'a', 'A', 'left', 'esc', ... or None for no key (-1) and unknown codes."""
    if code is None or code < 0:
        return None
    if code in _SPECIAL:
        return _SPECIAL[code]
    low = code & 0xFFFF
    if low in _SPECIAL and code > 0xFFFF and code < 0x1000000:  # modifier bits on GTK
        return _SPECIAL[low]
    if 33 <= code < 127:
        return chr(code)
    if 33 <= (code & 0xFF) < 127 and code < 0x10000:
        return chr(code & 0xFF)
    return None
