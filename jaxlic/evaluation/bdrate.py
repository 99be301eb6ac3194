"""Bjontegaard metrics and rate-distortion curve utilities on CompressAI-format results.

Bjontegaard (2001), "Calculation of average PSNR differences between RD-curves" (VCEG-M33):
the average horizontal (BD-rate, % of rate at equal quality) and vertical (BD-PSNR, dB at equal
rate) gap between two RD curves over the quality (resp. log-rate) range they share.

Two interpolations are offered:

* ``"pchip"`` (default): monotone piecewise cubic Hermite interpolation through the points, as in
  the JVET common test conditions spreadsheet and most current Python implementations;
  integrated exactly.
* ``"polyfit"``: the original VCEG-M33 least-squares cubic polynomial.

A curve is a CompressAI-format JSON (``{"name", "description", "results": {"bpp": [...],
"psnr-rgb": [...], ...}}``) or the dict loaded from one. Negative BD-rate means that the *test*
curve needs less rate than the *anchor* for the same quality.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from scipy.interpolate import PchipInterpolator

from jaxlic.errors import JaxlicError

METHODS = ("pchip", "polyfit")

# Accepted spellings of the same metric across CompressAI's own results and ours.
_METRIC_ALIASES = {
    "psnr": ("psnr-rgb", "psnr"),
    "psnr-rgb": ("psnr-rgb", "psnr"),
    "ms-ssim": ("ms-ssim-rgb", "ms-ssim"),
    "ms-ssim-rgb": ("ms-ssim-rgb", "ms-ssim"),
}


class RDCurveError(JaxlicError):
    """A rate-distortion curve that cannot be loaded or compared (missing metric, no overlap)."""


def load_rd_json(path) -> dict:
    """Loads a CompressAI-format results file.

    Args:
        path: JSON file with at least ``results.bpp`` and one quality metric.

    Returns:
        The parsed dict; ``name`` defaults to the file's stem.

    Raises:
        RDCurveError: missing or unreadable file, invalid JSON, or no ``results.bpp`` list.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RDCurveError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RDCurveError(f"cannot read RD results {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise RDCurveError(f"{path} is not a CompressAI-format results file (no 'results' dict)")
    if not isinstance(data["results"].get("bpp"), list):
        raise RDCurveError(f"{path} has no 'results.bpp' list")
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return data


def curve_points(curve: dict, metric: str = "psnr-rgb") -> tuple[np.ndarray, np.ndarray]:
    """Extracts ``(bpp, quality)`` arrays from a results dict, sorted by bpp, NaNs dropped.

    Args:
        curve: CompressAI-format dict (``results`` inside) or a bare ``results`` dict.
        metric: ``"psnr-rgb"``/``"psnr"``, ``"ms-ssim-rgb"``/``"ms-ssim"``, ``"ms-ssim-db"``
            (``-10 log10(1 - MS-SSIM)``, taken from ``ms-ssim-db-rgb`` or computed), or any key.

    Returns:
        ``(bpp [N], values [N])`` as float64.

    Raises:
        RDCurveError: the metric is absent or the lists differ in length.
    """
    results = curve.get("results", curve)
    name = curve.get("name", "curve")
    if metric in ("ms-ssim-db", "ms-ssim-db-rgb"):
        if "ms-ssim-db-rgb" in results:
            values = np.asarray(results["ms-ssim-db-rgb"], dtype=np.float64)
        else:
            ms = _lookup(results, "ms-ssim", name)
            values = -10.0 * np.log10(np.clip(1.0 - ms, 1e-12, None))
    else:
        values = _lookup(results, metric, name)
    bpp = np.asarray(results["bpp"], dtype=np.float64)
    if bpp.shape != values.shape:
        raise RDCurveError(f"{name}: 'bpp' has {bpp.size} values but {metric!r} has {values.size}")
    keep = np.isfinite(bpp) & np.isfinite(values) & (bpp > 0)
    bpp, values = bpp[keep], values[keep]
    order = np.argsort(bpp, kind="stable")
    return bpp[order], values[order]


def _lookup(results: dict, metric: str, name: str) -> np.ndarray:
    for key in _METRIC_ALIASES.get(metric, (metric,)):
        if key in results:
            return np.asarray(results[key], dtype=np.float64)
    raise RDCurveError(f"{name}: no {metric!r} values (has {', '.join(sorted(results))})")


def _prepare(rate, dist, what: str) -> tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(rate, dtype=np.float64)
    dist = np.asarray(dist, dtype=np.float64)
    if rate.shape != dist.shape or rate.ndim != 1:
        raise RDCurveError(f"{what}: rate and quality must be 1-D lists of the same length")
    if rate.size < 2:
        raise RDCurveError(f"{what}: need at least 2 RD points, got {rate.size}")
    if np.any(rate <= 0) or not np.all(np.isfinite(rate)) or not np.all(np.isfinite(dist)):
        raise RDCurveError(f"{what}: rates must be positive and all values finite")
    return np.log(rate), dist


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str, what: str) -> float:
    """Integral over [lo, hi] of the curve y(x) interpolated through the points."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise RDCurveError(f"{what}: duplicate values on the interpolation axis; cannot interpolate")
    if method == "pchip":
        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
    if method == "polyfit":
        if x.size < 4:
            raise RDCurveError(f"{what}: the cubic polyfit method needs at least 4 points, got {x.size}")
        poly = np.polynomial.Polynomial.fit(x, y, 3).convert().integ()
        return float(poly(hi) - poly(lo))
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def _overlap(a: np.ndarray, b: np.ndarray, axis: str) -> tuple[float, float]:
    lo = max(a.min(), b.min())
    hi = min(a.max(), b.max())
    if not hi > lo:
        raise RDCurveError(f"the two curves do not overlap in {axis}; Bjontegaard metrics undefined")
    return float(lo), float(hi)


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "pchip") -> float:
    """Bjontegaard delta rate of the test curve relative to the anchor.

    Args:
        rate_anchor: anchor bitrates (bpp), ``[N]``.
        dist_anchor: anchor quality (PSNR dB, or MS-SSIM in dB), ``[N]``.
        rate_test: test bitrates, ``[M]``.
        dist_test: test quality, ``[M]``.
        method: ``"pchip"`` or ``"polyfit"`` (see module docstring).

    Returns:
        Average rate difference in percent over the shared quality range (negative: the test
        codec needs less rate).

    Raises:
        RDCurveError: too few points, no overlap, or points that cannot be interpolated.
    """
    log_ra, da = _prepare(rate_anchor, dist_anchor, "anchor")
    log_rt, dt = _prepare(rate_test, dist_test, "test")
    lo, hi = _overlap(da, dt, "quality")
    int_a = _integral(da, log_ra, lo, hi, method, "anchor")
    int_t = _integral(dt, log_rt, lo, hi, method, "test")
    return float((math.exp((int_t - int_a) / (hi - lo)) - 1.0) * 100.0)


def bd_psnr(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "pchip") -> float:
    """Bjontegaard delta quality (dB) of the test curve relative to the anchor.

    Args and raises as :func:`bd_rate`.

    Returns:
        Average quality difference over the shared log-rate range (positive: the test codec is
        better at equal rate).
    """
    log_ra, da = _prepare(rate_anchor, dist_anchor, "anchor")
    log_rt, dt = _prepare(rate_test, dist_test, "test")
    lo, hi = _overlap(log_ra, log_rt, "rate")
    int_a = _integral(log_ra, da, lo, hi, method, "anchor")
    int_t = _integral(log_rt, dt, lo, hi, method, "test")
    return float((int_t - int_a) / (hi - lo))


def bd_rate_curves(anchor: dict, test: dict, metric: str = "psnr-rgb", method: str = "pchip") -> float:
    """:func:`bd_rate` between two CompressAI-format result dicts (``metric`` as in :func:`curve_points`)."""
    ra, da = curve_points(anchor, metric)
    rt, dt = curve_points(test, metric)
    return bd_rate(ra, da, rt, dt, method)


def bd_psnr_curves(anchor: dict, test: dict, metric: str = "psnr-rgb", method: str = "pchip") -> float:
    """:func:`bd_psnr` between two CompressAI-format result dicts."""
    ra, da = curve_points(anchor, metric)
    rt, dt = curve_points(test, metric)
    return bd_psnr(ra, da, rt, dt, method)


def psnr_at_bpp(curve: dict, bpp: float = 0.15, metric: str = "psnr-rgb", extrapolate: bool = False) -> float:
    """Quality of a curve at a given rate, interpolated (pchip in log-rate).

    Args:
        curve: CompressAI-format dict.
        bpp: the rate at which to read the curve.
        metric: quality metric (see :func:`curve_points`).
        extrapolate: allow reading outside the measured rate range (otherwise ``nan``).

    Returns:
        Interpolated quality, or ``nan`` if ``bpp`` lies outside the curve and ``extrapolate``
        is false.
    """
    rates, values = curve_points(curve, metric)
    if rates.size == 0:
        return float("nan")
    if rates.size == 1:
        return float(values[0]) if math.isclose(rates[0], bpp) else float("nan")
    x = np.log(rates)
    if np.any(np.diff(x) <= 0):
        raise RDCurveError(f"{curve.get('name', 'curve')}: duplicate bpp values; cannot interpolate")
    value = PchipInterpolator(x, values, extrapolate=extrapolate)(math.log(bpp))
    return float(value)
