"""Draws Gatehouse's icons: the app icon (an archway in a rounded square) and one tray icon per
server state, coloured by state, as PNG with no image library. Run: python3 icons/make_icons.py"""

import math
import pathlib
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent

STATES = {
    "stopped": (0x8a, 0x8f, 0x98),
    "starting": (0x3b, 0x82, 0xf6),
    "ready": (0x16, 0xa3, 0x4a),
    "warning": (0xf5, 0x9e, 0x0b),
    "crashed": (0xdc, 0x26, 0x26),
}


def png(path: pathlib.Path, size: int, pixel) -> None:
    rows = b""
    for y in range(size):
        rows += b"\x00" + b"".join(bytes(pixel(x + 0.5, y + 0.5)) for x in range(size))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def gate(size: int, colour, background=None):
    """A rounded square (or a disc for tray icons) with a white archway cut into it."""
    def pixel(x, y):
        u, v = x / size, y / size
        # Rounded square with corner radius 0.22.
        r = 0.22
        dx = max(abs(u - 0.5) - (0.5 - r), 0)
        dy = max(abs(v - 0.5) - (0.5 - r), 0)
        inside = math.hypot(dx, dy) <= r
        if not inside:
            return (0, 0, 0, 0)
        # The archway: a rectangle topped by a half circle, centred, lower part open.
        arch_w, arch_top, arch_bottom = 0.36, 0.34, 0.84
        cx = 0.5
        in_arch = (abs(u - cx) <= arch_w / 2 and arch_top + arch_w / 2 <= v <= arch_bottom) or \
                  (math.hypot(u - cx, v - (arch_top + arch_w / 2)) <= arch_w / 2 and v <= arch_top + arch_w / 2)
        if in_arch:
            return background or (255, 255, 255, 255)
        # Battlements: notches cut down from the top edge.
        if v <= 0.16 and 0.14 <= u <= 0.86 and int((u - 0.14) / 0.144) % 2 == 1:
            return (0, 0, 0, 0)
        return (*colour, 255)
    return pixel


def main() -> None:
    png(HERE / "app.png", 256, gate(256, (0x1e, 0x3a, 0x5f)))
    for state, colour in STATES.items():
        png(HERE / f"tray-{state}.png", 32, gate(32, colour, background=(0, 0, 0, 0)))


if __name__ == "__main__":
    main()
