"""A numpy + zlib PNG encoder that writes the bytes TensorFlow writes.

TFDS stores each image as the output of `tf.io.encode_png` (libpng with
zlib's default level, memory level 9 and libpng's own choices: the
adaptive row filter, the `Z_FILTERED` strategy, a window shrunk for small
images and a header rewritten to the smallest window that fits, 8 KiB
`IDAT` chunks). `encode_png` repeats those choices with numpy and
Python's `zlib`, so the builder can encode in threads: `zlib` releases
the GIL while it compresses, TensorFlow's op does not.

The builder checks its first images against `tf.io.encode_png` and falls
back to TensorFlow when they differ (e.g. under another zlib), so the
bytes on disk never depend on which encoder ran.
"""

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# libpng's defaults as TensorFlow uses them (png_io.cc).
_LEVEL = 6  # Z_DEFAULT_COMPRESSION
_MEM_LEVEL = 9  # MAX_MEM_LEVEL
_WINDOW_BITS = 15
_IDAT_SIZE = 8192  # PNG_ZBUF_SIZE
_COLOR_TYPE_RGB = 2


def encode_png(image):
    """Encodes an RGB image as PNG, byte for byte like `tf.io.encode_png`.

    Each row gets the filter (none, sub, up, average, Paeth) with the
    smallest sum of absolute signed bytes, the first on ties, as libpng
    chooses; the rows are deflated with the parameters TensorFlow gives
    libpng.

    Args:
        image: uint8 array `(height, width, 3)`.

    Returns:
        The PNG file as `bytes`.

    Example:

    ```python
    data = encode_png(np.zeros((8, 8, 3), np.uint8))
    data[:4]  # b"\\x89PNG"
    ```
    """
    image = np.asarray(image)
    if (
        image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[-1] != 3
        or min(image.shape[:2]) < 2
    ):
        raise ValueError(
            "`image` must be a uint8 array (height, width, 3) with both "
            f"sides >= 2. Received: image.dtype={image.dtype}, "
            f"image.shape={image.shape}"
        )
    return png_from_rows(filter_rows(image))


def png_from_rows(rows):
    """Deflates the output of `filter_rows` into a PNG file.

    Args:
        rows: uint8 array `(height, 1 + 3 * width)` from `filter_rows` of
            an RGB image.

    Returns:
        The PNG file as `bytes`.

    Example:

    ```python
    rows = filter_rows(np.zeros((8, 8, 3), np.uint8))
    png_from_rows(rows)[:4]  # b"\x89PNG"
    ```
    """
    return assemble_png(compress_rows(rows), rows.shape)


def compress_rows(rows):
    """Deflates the output of `filter_rows` as libpng does for TensorFlow.

    This is most of the encoding time, and `zlib` releases the GIL while
    it runs, so threads can compress while the caller composes more
    images.

    Args:
        rows: uint8 array `(height, 1 + 3 * width)` from `filter_rows` of
            an RGB image.

    Returns:
        The zlib stream, `bytes`.

    Example:

    ```python
    stream = compress_rows(filter_rows(np.zeros((8, 8, 3), np.uint8)))
    ```
    """
    data = rows.tobytes()
    # libpng shrinks the window while the data fits in half of it.
    window_bits = _WINDOW_BITS
    half_window = 1 << (window_bits - 1)
    while len(data) + 262 <= half_window:
        half_window >>= 1
        window_bits -= 1
    compressor = zlib.compressobj(
        _LEVEL, zlib.DEFLATED, window_bits, _MEM_LEVEL, zlib.Z_FILTERED
    )
    stream = compressor.compress(data) + compressor.flush()
    return _optimize_cmf(stream, len(data))


def _optimize_cmf(stream, data_size):
    """libpng's rewrite of the zlib header to the smallest fitting window.

    zlib never writes a window below 512 bytes; libpng then marks the
    smallest window (down to 256 bytes) that holds all the data and fixes
    the header's check bits. The compressed data is unchanged.
    """
    cmf = stream[0]
    if data_size > 16384 or (cmf & 0x0F) != 8 or (cmf & 0xF0) > 0x70:
        return stream
    info = cmf >> 4
    half_window = 1 << (info + 7)
    if data_size > half_window:
        return stream
    while True:
        half_window >>= 1
        info -= 1
        if not (info > 0 and data_size <= half_window):
            break
    cmf = (info << 4) | 8
    flags = stream[1] & 0xE0
    flags += 0x1F - ((cmf << 8) + flags) % 0x1F
    return bytes((cmf, flags)) + stream[2:]


def assemble_png(stream, rows_shape):
    """Wraps a `compress_rows` stream into a PNG file.

    Args:
        stream: bytes from `compress_rows`.
        rows_shape: the shape `(height, 1 + 3 * width)` of the rows.

    Returns:
        The PNG file as `bytes`: signature, `IHDR`, `IDAT` chunks of at
        most 8 KiB, `IEND`.

    Example:

    ```python
    rows = filter_rows(np.zeros((8, 8, 3), np.uint8))
    assemble_png(compress_rows(rows), rows.shape)[:4]  # b"\x89PNG"
    ```
    """
    height = int(rows_shape[0])
    width = (int(rows_shape[1]) - 1) // 3
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE_RGB, 0, 0, 0)
    parts = [_SIGNATURE, _chunk(b"IHDR", header)]
    for start in range(0, len(stream), _IDAT_SIZE):
        parts.append(_chunk(b"IDAT", stream[start : start + _IDAT_SIZE]))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def filter_rows(image):
    """Filters every row as libpng's adaptive heuristic does.

    Args:
        image: uint8 array `(height, width, channels)`.

    Returns:
        A uint8 array `(height, 1 + width * channels)`: each row's filter
        type byte followed by its filtered bytes.

    Example:

    ```python
    filter_rows(np.zeros((2, 2, 3), np.uint8))[:, 0]  # [0, 0]
    ```
    """
    height, width, channels = image.shape
    raw = image.reshape(height, width * channels)
    # a: left, b: up, c: up-left (zero outside the image).
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    left = np.zeros_like(raw)
    left[:, channels:] = raw[:, :-channels]
    up_left = np.zeros_like(raw)
    up_left[:, channels:] = up[:, :-channels]
    # uint8 arithmetic wraps modulo 256, as the filters do.
    average = (left >> 1) + (up >> 1) + (left & up & 1)
    a = left.astype(np.int16)
    b = up.astype(np.int16)
    c = up_left.astype(np.int16)
    p = b - c
    q = a - c
    pa = np.abs(p)
    pb = np.abs(q)
    pc = np.abs(p + q)
    paeth = np.where(
        (pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left)
    )
    candidates = np.stack(
        [raw, raw - left, raw - up, raw - average, raw - paeth]
    )
    # Sum of |signed byte|: v for v < 128, 256 - v otherwise.
    cost = np.minimum(candidates, 0 - candidates).sum(axis=2, dtype=np.int64)
    best = np.argmin(cost, axis=0)
    rows = candidates[best, np.arange(height)]
    out = np.empty((height, 1 + raw.shape[1]), np.uint8)
    out[:, 0] = best
    out[:, 1:] = rows
    return out


def _chunk(kind, data):
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
