"""Image-quality metrics used to report rate-distortion results: PSNR and 5-scale MS-SSIM.

MS-SSIM follows Wang, Simoncelli and Bovik (2003), "Multiscale structural similarity for image
quality assessment", with the settings every learned-compression paper reports (and that
``tf.image.ssim_multiscale`` and ``pytorch_msssim``, the latter used by CompressAI, implement):
an 11-tap Gaussian window with sigma 1.5 applied without padding ("valid"), K1 = 0.01,
K2 = 0.03, five scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average
pooling between scales, contrast-structure terms at the four finest scales and full SSIM at the
coarsest, per colour channel, then averaged over channels. Host numpy/scipy, float64.
"""

from __future__ import annotations

import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03
#: Smallest image side that 5-scale MS-SSIM can handle: the coarsest scale (1/16) must still
#: hold one 11x11 window.
MS_SSIM_MIN_SIDE = (WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def _as_float_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"expected [H, W, C] or [H, W] images, got shape {a.shape}")
    return a, b


def psnr(a, b, max_val: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels.

    Args:
        a: reference image, any shape (typically ``uint8 [H, W, 3]``).
        b: distorted image, same shape.
        max_val: peak value (255 for 8-bit images, 1 for images in [0, 1]).

    Returns:
        ``10 * log10(max_val**2 / MSE)``; ``inf`` for identical images.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max_val**2 / mse))


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps, centred, ``[size]``."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable correlation of ``[H, W, C]`` with ``window`` keeping only fully covered pixels."""
    r = (len(window) - 1) // 2
    from scipy import ndimage  # pylint: disable=g-import-not-at-top  # lazy: start-up

    y = ndimage.correlate1d(x, window, axis=0, mode="constant")
    y = ndimage.correlate1d(y, window, axis=1, mode="constant")
    return y[r : x.shape[0] - r, r : x.shape[1] - r]


def ssim_components(a, b, data_range: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """Single-scale SSIM and contrast-structure term, per channel.

    Args:
        a: reference image ``[H, W, C]`` (or ``[H, W]``), both sides >= 11.
        b: distorted image, same shape.
        data_range: dynamic range of the pixel values (255 for 8-bit).

    Returns:
        ``(ssim, cs)``, each ``[C]``: the mean over valid positions of the SSIM map
        ``l * cs`` and of the contrast-structure map ``cs``.
    """
    a, b = _as_float_pair(a, b)
    if min(a.shape[:2]) < WINDOW_SIZE:
        raise ValueError(f"image sides must be >= {WINDOW_SIZE} for SSIM, got {a.shape[:2]}")
    w = gaussian_window()
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_a = _filter_valid(a, w)
    mu_b = _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a**2
    var_b = _filter_valid(b * b, w) - mu_b**2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
    lum_map = (2.0 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum_map * cs_map).mean(axis=(0, 1)), cs_map.mean(axis=(0, 1))


def _downsample(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd trailing row/column is handled by symmetric padding."""
    h, w = x.shape[:2]
    x = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(a, b, data_range: float = 255.0, weights=MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM (Wang et al. 2003), 5 scales, averaged over colour channels.

    Args:
        a: reference image ``[H, W, 3]`` (uint8, or float in ``[0, data_range]``); both sides
            must be at least ``MS_SSIM_MIN_SIDE`` (161) pixels.
        b: distorted image, same shape.
        data_range: dynamic range of the values: 255 for uint8, 1.0 for images in [0, 1].
        weights: per-scale exponents, finest first.

    Returns:
        MS-SSIM in ``[0, 1]`` (1 for identical images).

    Raises:
        ValueError: shapes differ or the image is too small for the number of scales.
    """
    a, b = _as_float_pair(a, b)
    min_side = (WINDOW_SIZE - 1) * 2 ** (len(weights) - 1) + 1
    if min(a.shape[:2]) < min_side:
        raise ValueError(
            f"image sides must be >= {min_side} for {len(weights)}-scale MS-SSIM, got {a.shape[:2]}"
        )
    weights = np.asarray(weights, dtype=np.float64)
    terms = []
    for level in range(len(weights)):
        ssim, cs = ssim_components(a, b, data_range)
        # Negative means (possible for anti-correlated images) are clipped at 0 so that the
        # fractional powers stay real, as the TF and PyTorch reference implementations do.
        terms.append(np.maximum(cs if level < len(weights) - 1 else ssim, 0.0))
        if level < len(weights) - 1:
            a, b = _downsample(a), _downsample(b)
    per_channel = np.prod(np.stack(terms, axis=0) ** weights[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_or_nan(a, b, data_range: float = 255.0) -> float:
    """:func:`ms_ssim`, or ``nan`` for images smaller than ``MS_SSIM_MIN_SIDE``."""
    if min(np.shape(a)[:2]) < MS_SSIM_MIN_SIDE:
        return float("nan")
    return ms_ssim(a, b, data_range)
