"""Reading images into the codec's input format and writing outputs without leaving debris.

The codecs take exactly one input format, ``uint8 [H, W, 3]`` RGB. :func:`read_image` turns
whatever Pillow opens into that format and says, in a list of notes, every conversion it made
(alpha composited on white, grayscale replicated, palette expanded, 16-bit reduced to 8-bit,
EXIF rotation applied, first frame of an animation taken), so the CLI can tell the user what was
actually compressed; :func:`read_image_bytes` does the same for a file's bytes (stdin).
:func:`write_png_atomic` and :func:`write_bytes_atomic` write through a temporary file in the
destination directory and ``os.replace``, so a failure midway never leaves a partial output, and
they refuse to overwrite an existing file unless asked to.
"""

from __future__ import annotations

import io
import os
import secrets

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxlic.errors import ImageError, JaxlicError

SAMPLES = ("astronaut", "coffee", "chelsea")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_bit_depth(head: bytes) -> int | None:
    """Bit depth from a PNG's IHDR chunk, given the file's first 26 bytes (Pillow silently drops
    16-bit RGB to 8-bit)."""
    if len(head) >= 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        return head[24]
    return None


def _file_head(path, n: int = 26) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _to_rgb_uint8(im: Image.Image, bit_depth: int | None, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(im).astype(np.float64)
        if mode == "I" and bit_depth != 16 and values.size and values.max() <= 255 and values.min() >= 0:
            gray = values.astype(np.uint8)
            notes.append("grayscale image replicated to 3 RGB channels")
        else:
            gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
            notes.append("16-bit grayscale reduced to 8 bits (value / 257, rounded) and replicated to RGB")
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        gray = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        notes.append("floating-point grayscale clipped to 8 bits and replicated to RGB")
        return np.repeat(gray[:, :, None], 3, axis=2)

    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if mode == "P":
        notes.append("palette image expanded to RGB")
    elif mode in ("L", "LA", "1"):
        notes.append("grayscale image replicated to 3 RGB channels")
    elif mode not in ("RGB", "RGBA", "RGBa"):
        notes.append(f"{mode} image converted to RGB")

    if has_alpha:
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3]
        if alpha.min() < 255:
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(background, rgba).convert("RGB")
            notes.append("alpha channel composited on a white background")
        else:
            rgb = rgba.convert("RGB")
            notes.append("fully opaque alpha channel dropped")
    else:
        rgb = im.convert("RGB")
    if bit_depth == 16 and mode in ("RGB", "RGBA"):
        notes.append("16-bit per channel PNG reduced to 8 bits per channel")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def read_image(path) -> tuple[np.ndarray, list[str]]:
    """Reads an image file as 8-bit RGB.

    RGBA/LA/transparent-palette images are composited on a white background (an opaque alpha
    channel is simply dropped); grayscale is replicated to three channels; palette images are
    expanded; 16-bit images are reduced to 8 bits; an EXIF orientation is applied; of an
    animation, the first frame is taken. Each such conversion adds one line to ``notes``.

    Args:
        path: file to read (any format Pillow opens: PNG, JPEG, WebP, TIFF, BMP, ...).

    Returns:
        ``(img, notes)``: ``img`` is ``uint8 [H, W, 3]``; ``notes`` lists the conversions made
        (empty for a plain 8-bit RGB file).

    Raises:
        ImageError: the file is missing, a directory, unreadable, truncated, too large for
            Pillow's decompression-bomb limit, or not an image.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ImageError(f"is a directory, not an image: {path}")
    return _decode(path, path, _file_head(path))


def read_image_bytes(data: bytes, name: str = "<stdin>") -> tuple[np.ndarray, list[str]]:
    """:func:`read_image` of an image file's bytes (e.g. read from stdin); ``name`` is used in
    error messages."""
    if not data:
        raise ImageError(f"empty input, not an image: {name}")
    return _decode(io.BytesIO(data), name, bytes(data[:26]))


def _decode(source, name: str, head: bytes) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    try:
        with Image.open(source) as im:
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first of {im.n_frames} frames taken")
            im.load()
            if im.getexif().get(0x0112, 1) not in (0, 1):
                im = ImageOps.exif_transpose(im)
                notes.append("EXIF orientation applied (image rotated/flipped upright)")
            img = _to_rgb_uint8(im, _png_bit_depth(head), notes)
    except UnidentifiedImageError:
        raise ImageError(f"not an image (or a format Pillow cannot read): {name}") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large to read safely: {name} ({e})") from None
    except PermissionError:
        raise ImageError(f"permission denied: {name}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image {name}: {e}") from None
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"unsupported image shape {img.shape}: {name}")
    return img, notes


def _check_rgb_uint8(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {img.dtype} {img.shape}")
    return img


def write_bytes_atomic(path, data: bytes, force: bool = False) -> None:
    """Writes ``data`` to ``path`` all at once or not at all.

    The bytes go to a temporary file next to ``path`` which is then renamed over it, so a crash
    or an exception never leaves a partial file, and readers see the old or the new file.

    Args:
        path: destination file.
        data: the complete contents.
        force: overwrite an existing ``path``; otherwise an existing file is an error.

    Raises:
        JaxlicError: ``path`` exists and ``force`` is false, is a directory, or its directory is
            missing.
        OSError: writing failed (disk full, permissions); the temporary file is removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise JaxlicError(f"output is a directory: {path}")
    if not os.path.isdir(directory):
        raise JaxlicError(f"output directory does not exist: {directory}")
    if not force and os.path.lexists(path):
        raise JaxlicError(f"output file exists: {path} (use --force to overwrite)")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never follow or clobber something already at the temporary name; 0o666 & umask
    # gives the file the same permissions a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _rename_no_clobber(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _rename_no_clobber(tmp: str, path: str) -> None:
    """Renames without overwriting a file that appeared since the existence check."""
    try:
        os.link(tmp, path)  # atomic, fails if path exists
    except FileExistsError:
        raise JaxlicError(f"output file exists: {path} (use --force to overwrite)") from None
    except OSError:
        # Filesystems without hard links: fall back to check-then-rename.
        if os.path.lexists(path):
            raise JaxlicError(f"output file exists: {path} (use --force to overwrite)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def encode_png(img) -> bytes:
    """Encodes a ``uint8 [H, W, 3]`` image as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(_check_rgb_uint8(img), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def write_png_atomic(path, img, force: bool = False) -> None:
    """Writes a ``uint8 [H, W, 3]`` image as PNG, atomically (see :func:`write_bytes_atomic`).

    Args:
        path: destination ``.png`` file.
        img: ``uint8 [H, W, 3]`` RGB image.
        force: overwrite an existing file.

    Raises:
        JaxlicError: the output exists and ``force`` is false, or its directory is missing.
        ValueError: ``img`` is not ``uint8 [H, W, 3]``.
    """
    write_bytes_atomic(path, encode_png(img), force=force)


def sample_image(name: str = "astronaut") -> np.ndarray:
    """A test image bundled with scikit-image (no download needed).

    Args:
        name: ``"astronaut"`` (512x512), ``"coffee"`` (400x600) or ``"chelsea"`` (300x451).

    Returns:
        ``uint8 [H, W, 3]`` RGB image.

    Raises:
        ImageError: unknown sample name.
    """
    if name not in SAMPLES:
        raise ImageError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLES)}")
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)()[:, :, :3].astype(np.uint8))


def list_images(directory, max_images: int | None = None) -> list[str]:
    """Image files directly inside ``directory``, sorted by name.

    Raises:
        JaxlicError: not a folder, or no image files in it.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise JaxlicError(f"not a folder of images: {directory}")
    files = sorted(
        os.path.join(directory, f)
        for f in os.listdir(directory)
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
    )
    if not files:
        raise JaxlicError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")
    return files[:max_images] if max_images else files
