"""Image bytes in, RGB arrays out: the one place that decodes images.

Sources publish images as raw bytes, Hugging Face ``{"bytes", "path"}`` structs, base64 strings, or paths into
an image folder. :func:`resolve_image_bytes` turns any of these into bytes; :func:`decode_rgb` decodes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

# Undecodable images are reported as rejects with a reason; OpenCV's own stderr log would only add noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


DEFAULT_MAX_PIXELS = 100_000_000
"""The default cap on an image's pixels (width x height), checked from its header before decoding: HR-Bench's 8K
images (33 million pixels) pass; a 32000 x 32000 "pixel bomb" (a few MB of PNG, 3 GB decoded) does not."""


class ImageError(ValueError):
    """An image that cannot be found or decoded; the message is the rejects-table reason."""

    def __init__(self, message: str, reason: str = "bad_image") -> None:
        super().__init__(message)
        self.reason = reason


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_path(text: str, image_root: str | Path | None) -> bool:
    """A string is a path when it is short and ends in an image suffix, or names an existing file."""
    if text.startswith("data:") or len(text) > 4096:
        return False
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        return True
    candidate = Path(text) if image_root is None else Path(image_root) / text
    try:
        return candidate.is_file()
    except OSError:  # a name the file system cannot hold (base64 text often is one): not a path
        return False


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as error:
        raise ImageError(f"invalid base64 image: {error}") from None


def check_bytes(size: int, max_bytes: int | None, what: str = "image") -> None:
    """Refuse an encoded image over ``max_bytes`` (the benchmark's ``max_image_bytes``) before it is decoded."""
    if max_bytes is not None and size > max_bytes:
        raise ImageError(f"{what} of {size} bytes exceeds the cap of {max_bytes} (max_image_bytes)", "image_too_large")


def resolve_image_bytes(value: Any, image_root: str | Path | None, max_bytes: int | None = None) -> bytes:
    """Bytes of an image given as bytes, an HF image struct, a base64 string or a (relative) path; a file or a
    base64 text over ``max_bytes`` is refused before it is read or decoded."""
    if value is None:
        raise ImageError("missing image")
    if isinstance(value, dict):  # Hugging Face `datasets` Image feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return resolve_image_bytes(str(value["path"]), image_root, max_bytes)
        raise ImageError("missing image (empty image struct)")
    if isinstance(value, bytes | bytearray | memoryview):
        if not len(value):
            raise ImageError("missing image (zero bytes)", "missing_image")
        return bytes(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ImageError("missing image (empty string)", "missing_image")
        if not _is_path(text, image_root):
            check_bytes(len(text) * 3 // 4, max_bytes, "a base64 image")
            return _decode_base64(text)
        try:
            return _read_image_file(text, image_root, max_bytes)
        except OSError as error:  # a name too long, a permission, a broken link: this row's image, not the run
            raise ImageError(f"image file '{text[:120]}' cannot be read: {error.strerror or error}") from None
    raise ImageError(f"unsupported image value of type {type(value).__name__}")


def _read_image_file(text: str, image_root: str | Path | None, max_bytes: int | None) -> bytes:
    path = contained_path(text, image_root)
    if path.is_dir():
        raise ImageError(f"image path '{text}' is a directory, not a file")
    if not path.is_file():
        raise ImageError(f"image file not found: '{text}'")
    check_bytes(path.stat().st_size, max_bytes, f"image file '{text}'")
    data = path.read_bytes()
    if not data:
        raise ImageError(f"image file '{text}' is empty (zero bytes)")
    return data


def contained_path(text: str, image_root: str | Path | None) -> Path:
    """The file an image path names, which must resolve (symlinks followed) inside ``image_root``: a path that
    leaves it (``../``, an absolute path elsewhere, a symlink out) is refused before any byte of it is read."""
    if image_root is None:
        raise ImageError(f"image path '{text}' needs the benchmark's image_root (paths are read only inside it)",
                         "path_outside_root")  # fmt: skip
    root = Path(image_root).resolve()
    path = (root / text).resolve()  # an absolute `text` replaces the root and must still land inside it
    if not path.is_relative_to(root):
        raise ImageError(f"image path '{text}' resolves outside image_root; it is not read", "path_outside_root")
    return path


def declared_size(data: bytes) -> tuple[int, str] | None:
    """The pixel count an encoded image's header declares, and how to name it ("W x H pixels"), without decoding
    its pixels (None where Pillow does not know the format: OpenCV decides then)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return width * height, f"{width} x {height} pixels"
    except Image.DecompressionBombError as error:  # Pillow names only the count: "Image size (N pixels) exceeds"
        numbers = [int(n) for n in re.findall(r"\d+", str(error))]
        pixels = numbers[0] if numbers else 2**31
        return pixels, f"{pixels} pixels"
    except Exception:
        return None


def check_pixels(data: bytes, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before anything is decoded; and one
    whose header cannot be read at all (no size to check: it would reach the decoder unbounded)."""
    declared = declared_size(data)
    if declared is None:
        raise ImageError(
            f"the image's header is not one of the known formats (PNG, JPEG, WebP, GIF, BMP, TIFF, ...): its size "
            f"cannot be checked before decoding ({len(data)} bytes)"
        )
    if declared[0] > max_pixels:
        raise ImageError(
            f"image of {declared[1]} exceeds the cap of {max_pixels} (max_image_pixels)",
            "image_too_large",
        )


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to an ``(height, width, 3)`` uint8 RGB array (alpha dropped, grey expanded).
    The pixel cap is checked from the header first. Error messages never quote the bytes."""
    if not data:
        raise ImageError("empty image (zero bytes)")
    check_pixels(data, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as error:  # e.g. beyond OpenCV's own pixel limit
        raise ImageError(f"undecodable image ({len(data)} bytes): {str(error).strip().splitlines()[-1]}") from None
    if image is None or image.size == 0:
        raise ImageError(f"undecodable image ({len(data)} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("could not encode PNG")
    return buffer.tobytes()
