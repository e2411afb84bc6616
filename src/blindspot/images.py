"""Image bytes in, RGB arrays out: the one place that decodes images.

Sources publish images as raw bytes, Hugging Face ``{"bytes", "path"}`` structs, base64 strings, or paths into
an image folder. :func:`resolve_image_bytes` turns any of these into bytes; :func:`decode_rgb` decodes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Undecodable images are reported as rejects with a reason; OpenCV's own stderr log would only add noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageError(ValueError):
    """An image that cannot be found or decoded; the message is the rejects-table reason."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_path(text: str, image_root: str | Path | None) -> bool:
    """A string is a path when it is short and ends in an image suffix, or names an existing file."""
    if text.startswith("data:") or len(text) > 4096:
        return False
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        return True
    candidate = Path(text) if image_root is None else Path(image_root) / text
    return candidate.is_file()


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as error:
        raise ImageError(f"invalid base64 image: {error}") from None


def resolve_image_bytes(value: Any, image_root: str | Path | None) -> bytes:
    """Bytes of an image given as bytes, an HF image struct, a base64 string or a (relative) path."""
    if value is None:
        raise ImageError("missing image")
    if isinstance(value, dict):  # Hugging Face `datasets` Image feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return resolve_image_bytes(str(value["path"]), image_root)
        raise ImageError("missing image (empty image struct)")
    if isinstance(value, bytes | bytearray | memoryview):
        if not len(value):
            raise ImageError("missing image (zero bytes)")
        return bytes(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ImageError("missing image (empty string)")
        if not _is_path(text, image_root):
            return _decode_base64(text)
        path = Path(text)
        if not path.is_absolute():
            if image_root is None:
                raise ImageError(f"image path '{text}' is relative but the benchmark has no image_root")
            path = Path(image_root) / path
        if not path.is_file():
            raise ImageError(f"image file not found: '{path}'")
        return path.read_bytes()
    raise ImageError(f"unsupported image value of type {type(value).__name__}")


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode encoded image bytes to an ``(height, width, 3)`` uint8 RGB array (alpha dropped, grey expanded)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageError(f"undecodable image ({len(data)} bytes, header {data[:8]!r})")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("could not encode PNG")
    return buffer.tobytes()
