"""OpenEXR scanline files in plain numpy (stock Blender's Python has no EXR library).

Reads what Blender's renderer writes for us (multi-layer, single- or multi-part, codec NONE or ZIP,
half or float channels) and writes the float passes we ship (single part, FLOAT channels, ZIP).
Layout per the OpenEXR file-layout spec: magic, version/flags, headers of ``name\\0type\\0size value``
attributes, per-part chunk offset tables, then chunks ``[part] y size data`` with channels sorted by
name, each a full row.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import atomic_path

MAGIC = 20000630
_PIXEL = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}   # UINT, HALF, FLOAT
_LINES = {0: 1, 2: 1, 3: 16}                                              # NONE, ZIPS, ZIP
_MULTIPART, _LONG_NAMES = 0x1000, 0x400


def _unpredict(raw: bytes) -> bytes:
    """Undo ZIP's delta predictor and byte interleave."""
    p = np.frombuffer(raw, np.uint8).astype(np.int64)
    p[1:] -= 128
    t = (np.cumsum(p) % 256).astype(np.uint8)
    half = (len(t) + 1) // 2
    out = np.empty_like(t)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _predict(data: bytes) -> bytes:
    t = np.frombuffer(data, np.uint8)
    t = np.concatenate([t[0::2], t[1::2]]).astype(np.int64)
    d = t.copy()
    d[1:] = (t[1:] - t[:-1] + 128) % 256
    return d.astype(np.uint8).tobytes()


def _read_header(buf: bytes, i: int) -> tuple[dict, int]:
    attrs = {}
    while buf[i] != 0:
        j = buf.index(b"\0", i)
        k = buf.index(b"\0", j + 1)
        name, typ = buf[i:j].decode(), buf[j + 1:k].decode()
        size = struct.unpack_from("<i", buf, k + 1)[0]
        value = buf[k + 5:k + 5 + size]
        if typ == "chlist":
            chans, c = [], 0
            while value[c] != 0:
                e = value.index(b"\0", c)
                chans.append((value[c:e].decode(), struct.unpack_from("<i", value, e + 1)[0]))
                c = e + 1 + 16
            value = chans
        elif typ == "box2i":
            value = struct.unpack("<4i", value)
        elif typ == "compression":
            value = value[0]
        elif typ == "int":
            value = struct.unpack("<i", value)[0]
        elif typ == "string":
            value = value.decode(errors="replace")
        attrs[name] = value
        i = k + 5 + size
    return attrs, i + 1


def read_exr(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All channels of a scanline EXR as ``{full channel name: (H, W) float32}``, rows top first.

    A missing, truncated or corrupt file is a ``UserError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such file")
    buf = path.read_bytes()
    try:
        return _parse_exr(path, buf)
    except (struct.error, zlib.error, IndexError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise UserError(path, f"truncated or corrupt EXR ({type(exc).__name__}: {exc})") from None


def _parse_exr(path: Path, buf: bytes) -> dict[str, np.ndarray]:
    magic, version = struct.unpack_from("<ii", buf, 0) if len(buf) >= 8 else (0, 0)
    if magic != MAGIC:
        raise UserError(path, "not an OpenEXR file")
    multipart = bool(version & _MULTIPART)
    headers, i = [], 8
    while True:
        header, i = _read_header(buf, i)
        headers.append(header)
        if not multipart or buf[i] == 0:
            i += 1 if multipart else 0
            break
    tables = []
    for h in headers:
        x0, y0, x1, y1 = h["dataWindow"]
        n = h.get("chunkCount") or -(-(y1 - y0 + 1) // _LINES.get(h["compression"], 1))
        tables.append(struct.unpack_from(f"<{n}Q", buf, i))
        i += 8 * n
    out = {}
    for part, (h, table) in enumerate(zip(headers, tables)):
        if h["compression"] not in _LINES or h.get("type", "scanlineimage") != "scanlineimage":
            raise UserError(path, f"EXR compression {h['compression']} / tiles are not supported here")
        x0, y0, x1, y1 = h["dataWindow"]
        W, H = x1 - x0 + 1, y1 - y0 + 1
        chans = sorted(h["channels"])
        planes = {name: np.empty((H, W), np.float32) for name, _ in chans}
        row_bytes = sum(W * _PIXEL[t].itemsize for _, t in chans)
        for offset in table:
            o = offset + (4 if multipart else 0)
            y, size = struct.unpack_from("<ii", buf, o)
            data = buf[o + 8:o + 8 + size]
            n_lines = min(_LINES[h["compression"]], y1 + 1 - y)
            if len(data) < row_bytes * n_lines:
                data = _unpredict(zlib.decompress(data))
            c = 0
            for line in range(n_lines):
                for name, t in chans:
                    dt = _PIXEL[t]
                    planes[name][y - y0 + line] = np.frombuffer(data, dt, W, c)
                    c += W * dt.itemsize
        prefix = f"{h['name']}." if multipart and "name" in h and not all(
            n.startswith(h["name"] + ".") for n, _ in chans) else ""
        out.update({prefix + n: v for n, v in planes.items()})
    return out


def _attr(name: str, typ: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + typ.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(path: str | os.PathLike, channels: dict[str, np.ndarray], force: bool = True) -> Path:
    """Write ``{name: (H, W) float}`` as a FLOAT, ZIP-compressed single-part EXR, atomically."""
    names = sorted(channels)
    planes = [np.ascontiguousarray(channels[n], dtype="<f4") for n in names]
    H, W = planes[0].shape
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<i4x2i", 2, 1, 1) for n in names) + b"\0"
    header = struct.pack("<ii", MAGIC, 2) + b"".join([
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", bytes([3])),
        _attr("dataWindow", "box2i", struct.pack("<4i", 0, 0, W - 1, H - 1)),
        _attr("displayWindow", "box2i", struct.pack("<4i", 0, 0, W - 1, H - 1)),
        _attr("lineOrder", "lineOrder", bytes([0])),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    rows = np.stack(planes, 1)                                       # (H, C, W): channels per row
    chunks = []
    for y in range(0, H, 16):
        packed = zlib.compress(_predict(rows[y:y + 16].tobytes()))
        chunks.append(struct.pack("<ii", y, len(packed)) + packed)
    offsets, pos = [], len(header) + 8 * len(chunks)
    for chunk in chunks:
        offsets.append(pos)
        pos += len(chunk)
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks))
    return Path(path)
