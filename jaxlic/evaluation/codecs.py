"""Classical image codecs as rate-distortion baselines, each at its best setting, on real files.

Each codec compresses a ``uint8 [H, W, 3]`` image at one setting, and :func:`run_codec` reports the
rate from the size of the actual file it produced (all headers included), the distortion of the
decoded image (PSNR, MS-SSIM) and wall-clock encode/decode times. Backends, in order of preference:

============  ==============================================  ===================================
codec         backend                                          setting
============  ==============================================  ===================================
jpeg          Pillow (libjpeg, 4:2:0)                          quality 1..95
webp          Pillow (libwebp), ``method=6`` (slowest, best)   quality 0..100
webp-m4       Pillow (libwebp), ``method=4`` (its default)     quality 0..100
jpeg2000      Pillow (OpenJPEG), 9/7 irreversible, MCT,        target rate in bpp
              one layer at that rate; else ``opj_compress -r``
avif          Pillow (libavif, AOM), 4:4:4, speed 6;           quality 0..100
              else ``avifenc``
heif          pillow-heif (libheif + x265), 4:4:4; else        quality 0..100
              ``heif-enc -p chroma=444``
jxl           pillow-jxl-plugin (libjxl), effort 7             quality 0..100
bpg           ``bpgenc -f 444`` / ``bpgdec``                   QP 0..51 (lower is better)
============  ==============================================  ===================================

JPEG 2000 is targeted by rate: targeting a PSNR spreads the rate over the images differently and
is not what the codec is best at (on Kodak, OpenJPEG by PSNR and by rate averages 26.87 dB and
28.48 dB at the same mean rate). The default sweeps (:data:`DEFAULT_QUALITIES`) are dense and reach
down to the lowest rate each codec can make, so that every image's curve brackets the rate a
learned codec spends on it (see :mod:`jaxlic.evaluation.matched`). Codecs whose backend is missing
are reported by :func:`codec_status` with a reason and skipped by the evaluation; ``pip install
"jaxlic[codecs]"`` adds HEIF and JPEG XL. For external tools, times include process start-up and
the temporary PNG, so they are an upper bound on the codec's own speed. See ``docs/CODECS.md``.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image, features

from jaxlic.errors import JaxlicError
from jaxlic.metrics import ms_ssim_or_nan, psnr

CODECS = ("jpeg", "webp", "webp-m4", "jpeg2000", "avif", "heif", "jxl", "bpg")

#: Settings swept by ``jaxlic eval`` when none are given: dense, from each codec's lowest rate
#: (about 0.05 bpp on Kodak where the codec can go that low) to about 2 bpp.
_WEBP = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95]
DEFAULT_QUALITIES = {
    "jpeg": [1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90],
    "webp": _WEBP,
    "webp-m4": _WEBP,
    "jpeg2000": [0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2, 0.24, 0.28, 0.33, 0.4]
    + [0.5, 0.6, 0.75, 0.9, 1.1, 1.4, 1.8, 2.4],
    "avif": [0, 2, 5, 8, 12, 16, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90],
    "heif": [0, 3, 6, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80],
    "jxl": [0, 3, 6, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90],
    "bpg": [51, 49, 47, 45, 43, 41, 39, 37, 35, 32, 29, 26, 22],
}

_TOOL_TIMEOUT_S = 300


class CodecError(JaxlicError):
    """A codec that is unknown, not installed, or that failed on an image."""


# ----------------------------------------------------------------------------------------------
# backends: each is (encode(img, quality, workdir) -> bytes, decode(data, workdir) -> img)


def _pil_encode(img: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format=fmt, **params)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _run_tool(args: list[str]) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, timeout=_TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise CodecError(f"{args[0]} timed out after {_TOOL_TIMEOUT_S} s") from None
    except OSError as e:
        raise CodecError(f"cannot run {args[0]}: {e}") from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise CodecError(f"{args[0]} failed (exit {proc.returncode}): {message[-1] if message else ''}")


def _tool_codec(encode_args, decode_args, suffix: str):
    """Backend from command-line tools: PNG in, file out, file in, PNG out."""

    def encode(img, quality, workdir):
        src = os.path.join(workdir, "in.png")
        dst = os.path.join(workdir, "out" + suffix)
        Image.fromarray(img, mode="RGB").save(src, format="PNG", compress_level=1)
        _run_tool(encode_args(src, dst, quality))
        with open(dst, "rb") as f:
            return f.read()

    def decode(data, workdir):
        src = os.path.join(workdir, "dec" + suffix)
        dst = os.path.join(workdir, "dec.png")
        with open(src, "wb") as f:
            f.write(data)
        _run_tool(decode_args(src, dst))
        with Image.open(dst) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    return encode, decode


def _avif_quantizer(quality: int) -> int:
    return int(round(63 * (100 - min(max(quality, 0), 100)) / 100))


def _pillow(fmt: str, feature: str, params, label: str = ""):
    """Backend over a Pillow plugin: ``(description, encode, decode, missing-reason)``."""
    return (
        f"Pillow {fmt}{label}",
        lambda img, q, wd: _pil_encode(img, fmt, **params(q)),
        lambda data, wd: _pil_decode(data),
        None if features.check(feature) else f"Pillow built without {feature} support",
    )


def _plugin(module: str, fmt: str, params):
    """Backend over a Pillow plugin package (``pillow-heif``, ``pillow-jxl-plugin``), if installed."""
    try:
        plugin = importlib.import_module(module)
    except ImportError:
        return (f"{module} {fmt}", None, None, f"{module.replace('_', '-')} not installed")
    if hasattr(plugin, "register_heif_opener"):
        plugin.register_heif_opener()
    return (
        f"{module} {fmt}",
        lambda img, q, wd: _pil_encode(img, fmt, **params(q)),
        lambda data, wd: _pil_decode(data),
        None,
    )


def _j2k_ratio(bpp: float) -> float:
    """OpenJPEG's compression ratio for a target rate of ``bpp`` on 24-bit RGB."""
    if not bpp > 0:
        raise CodecError(f"jpeg2000 takes a target rate in bpp > 0, got {bpp}")
    return 24.0 / float(bpp)


def _tools(names: list[str], encode_args, decode_args, suffix: str):
    """Backend over command-line tools: ``(description, encode, decode, missing-reason)``."""
    missing = [n for n in names if shutil.which(n) is None]
    enc, dec = _tool_codec(encode_args, decode_args, suffix)
    return ("/".join(names), enc, dec, f"{', '.join(missing)} not installed" if missing else None)


@functools.cache
def _backends() -> dict[str, list[tuple]]:
    """Per codec, candidate backends in order of preference."""
    heif_decoder = "heif-dec" if shutil.which("heif-dec") else "heif-convert"
    return {
        "jpeg": [_pillow("JPEG", "jpg", lambda q: {"quality": int(q)})],
        "webp": [_pillow("WEBP", "webp", lambda q: {"quality": float(q), "method": 6}, " method 6")],
        "webp-m4": [_pillow("WEBP", "webp", lambda q: {"quality": float(q), "method": 4}, " method 4")],
        "jpeg2000": [
            _pillow(
                "JPEG2000",
                "jpg_2000",
                lambda q: {
                    "quality_mode": "rates",
                    "quality_layers": [_j2k_ratio(q)],
                    "irreversible": True,
                    "mct": 1,
                },
                " 9/7 MCT by rate",
            ),
            _tools(
                ["opj_compress", "opj_decompress"],
                lambda s, d, q: ["opj_compress", "-i", s, "-o", d, "-r", str(_j2k_ratio(q)), "-I"],
                lambda s, d: ["opj_decompress", "-i", s, "-o", d],
                ".jp2",
            ),
        ],
        "avif": [
            _pillow(
                "AVIF",
                "avif",
                lambda q: {"quality": int(q), "subsampling": "4:4:4", "speed": 6},
                " 4:4:4 speed 6",
            ),
            _tools(
                ["avifenc", "avifdec"],
                lambda s, d, q: [
                    "avifenc",
                    "--yuv",
                    "444",
                    "--min",
                    str(_avif_quantizer(q)),
                    "--max",
                    str(_avif_quantizer(q)),
                    "-s",
                    "6",
                    s,
                    d,
                ],
                lambda s, d: ["avifdec", s, d],
                ".avif",
            ),
        ],
        "heif": [
            _plugin("pillow_heif", "HEIF", lambda q: {"quality": int(q), "chroma": 444}),
            _tools(
                ["heif-enc", heif_decoder],
                lambda s, d, q: ["heif-enc", "-q", str(int(q)), "-p", "chroma=444", "-o", d, s],
                lambda s, d: [heif_decoder, s, d],
                ".heic",
            ),
        ],
        "jxl": [_plugin("pillow_jxl", "JXL", lambda q: {"quality": int(q), "effort": 7})],
        "bpg": [
            _tools(
                ["bpgenc", "bpgdec"],
                lambda s, d, q: ["bpgenc", "-f", "444", "-q", str(int(q)), "-o", d, s],
                lambda s, d: ["bpgdec", "-o", d, s],
                ".bpg",
            ),
        ],
    }


def codec_status() -> dict[str, str]:
    """How each codec would run here.

    Returns:
        ``{codec: description}``: the backend used (e.g. ``"Pillow AVIF"``), or
        ``"unavailable: <reason>"``.
    """
    status = {}
    for name, candidates in _backends().items():
        usable = [c for c in candidates if c[3] is None]
        status[name] = usable[0][0] if usable else "unavailable: " + "; ".join(c[3] for c in candidates)
    return status


def available_codecs() -> list[str]:
    """Names of the codecs that have a working backend here, in :data:`CODECS` order."""
    return [name for name, s in codec_status().items() if not s.startswith("unavailable")]


def _backend(name: str, backend: str | None = None):
    if name not in CODECS:
        raise CodecError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    candidates = _backends()[name]
    if backend is not None:
        candidates = [c for c in candidates if c[0] == backend]
        if not candidates:
            raise CodecError(f"codec {name!r} has no backend {backend!r}")
    for candidate in candidates:
        if candidate[3] is None:
            return candidate
    raise CodecError(f"codec {name!r} is unavailable: " + "; ".join(c[3] for c in candidates))


def backends(name: str) -> list[str]:
    """Descriptions of the usable backends of one codec, preferred first."""
    return [c[0] for c in _backends().get(name, []) if c[3] is None]


def run_codec(name: str, img_uint8, quality, backend: str | None = None) -> dict:
    """Compresses and decompresses one image with a classical codec and measures the result.

    Args:
        name: one of :data:`CODECS`.
        img_uint8: ``uint8 [H, W, 3]`` image.
        quality: the codec's own quality parameter (see the module docstring).
        backend: force one backend (a description from :func:`backends`); default: preferred.

    Returns:
        ``dict(bpp, psnr, ms_ssim, encoding_time, decoding_time, recon, size_bytes, backend)``;
        ``bpp`` is ``8 * file size / (H * W)``, times in seconds, ``recon`` is
        ``uint8 [H, W, 3]``, ``ms_ssim`` is ``nan`` for images under 161 pixels a side.

    Raises:
        CodecError: unknown or unavailable codec, a tool failure, or a decoded image of the
            wrong size.
    """
    img = np.ascontiguousarray(np.asarray(img_uint8))
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {img.dtype} {img.shape}")
    description, encode, decode, _ = _backend(name, backend)
    with tempfile.TemporaryDirectory(prefix=f"jaxlic-{name}-") as workdir:
        t0 = time.perf_counter()
        data = encode(img, quality, workdir)
        t1 = time.perf_counter()
        recon = decode(data, workdir)
        t2 = time.perf_counter()
    if recon.shape != img.shape:
        raise CodecError(f"{name} decoded a {recon.shape} image from a {img.shape} input")
    h, w = img.shape[:2]
    return {
        "bpp": 8.0 * len(data) / (h * w),
        "psnr": psnr(img, recon),
        "ms_ssim": ms_ssim_or_nan(img, recon),
        "encoding_time": t1 - t0,
        "decoding_time": t2 - t1,
        "recon": recon,
        "size_bytes": len(data),
        "backend": description,
    }
