"""Per-image comparisons at matched rate: how much better or worse a model is than a codec or
than a baseline model.

A curve averaged over images (mean bpp, mean PSNR per quality setting) depends on how a codec's
quality parameter spreads rate over the images, not only on the codec: on Kodak, OpenJPEG
targeted by PSNR and by rate differ by 1.6 dB at the same mean rate (issue "Honest comparisons").
So the comparisons here never average curves. For every image, the classical codec's own curve
(its points on that image, Pareto front, pchip in log-rate) is read at the rate the model spent
on that image; the difference model − codec is averaged over images with a 95% bootstrap
confidence interval. Images whose model rate falls outside the range the codec measured on that
image are counted and listed, never extrapolated. When a model has several points per image
(a curve), the per-image BD-rate against each codec is averaged the same way.

The same reading compares two models (:func:`versus`: a variant against its baseline, new
weights against old ones): the baseline model takes the codec's place, its own curve on each image
read at the rate the test model's stream took there.

Sign convention: ``mean_db > 0`` means the model is better than the codec (or the baseline) at the
same rate; ``bd_rate < 0`` means the model needs less rate for the same quality.

The rows are the per-image records that ``jaxlic eval`` writes (``per_image_<name>.csv``), each
with ``image``, ``name``, ``quality``, ``bpp``, ``psnr`` and ``ms_ssim``. Example::

    jaxlic compare results/kodak/per_image_ckbd-full.csv results/kodak/per_image_codecs.csv \
        --json results/kodak/summary.json
    jaxlic compare results/default/per_image_ckbd-full-vr-4000steps.csv \
        --against results/default/per_image_ckbd-full-vr-2000steps.csv --at-bpp 0.1,0.2,0.4
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict

import numpy as np
from scipy.interpolate import PchipInterpolator

from jaxlic.errors import JaxlicError

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
#: Columns of a per-image record (``per_image_*.csv``), and those that hold numbers.
FIELDS = (
    "image",
    "kind",
    "name",
    "quality",
    "height",
    "width",
    "size_bytes",
    "bpp",
    "bpp_estimated",
    "psnr",
    "ms_ssim",
    "encoding_time",
    "decoding_time",
)
_NUMERIC = FIELDS[3:]


class ComparisonError(JaxlicError):
    """Per-image results that cannot be compared (missing images, other sizes, no points)."""


# ----------------------------------------------------------------------------------------------
# per-image records


def read_rows(paths) -> list[dict]:
    """Reads per-image CSV files (``jaxlic eval``'s ``per_image_*.csv``) into row dicts.

    Raises:
        ComparisonError: a file that is missing, empty, or lacks the ``image``, ``name``,
            ``bpp`` or ``psnr`` columns.
    """
    rows = []
    for path in [paths] if isinstance(paths, str | os.PathLike) else paths:
        if not os.path.isfile(path):
            raise ComparisonError(f"no such per-image results file: {path}")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"image", "name", "bpp", "psnr"} - set(reader.fieldnames or ())
            if missing:
                raise ComparisonError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            new = [_parse(r) for r in reader]
        if not new:
            raise ComparisonError(f"{path}: no rows")
        rows += new
    return rows


def _parse(row: dict) -> dict:
    out = dict(row)
    for key in _NUMERIC:
        if out.get(key) not in (None, ""):
            value = float(out[key])
            out[key] = int(value) if key in ("height", "width", "size_bytes") else value
    return out


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - MS-SSIM)`` (nan for nan)."""
    return -10.0 * math.log10(max(1.0 - value, 1e-12)) if _finite(value) else float("nan")


def _check_sizes(model_rows: list[dict], codec_rows: list[dict], codec: str) -> None:
    sizes = {}
    for r in codec_rows:
        if "height" in r and "width" in r:
            sizes[r["image"]] = (r["height"], r["width"])
    for r in model_rows:
        if r["image"] in sizes and "height" in r and (r["height"], r["width"]) != sizes[r["image"]]:
            raise ComparisonError(
                f"{r['image']} is {r['height']}x{r['width']} in the model's results but "
                f"{sizes[r['image']][0]}x{sizes[r['image']][1]} in {codec}'s: not the same image"
            )


# ----------------------------------------------------------------------------------------------
# one image's curve


def pareto_front(rates, values) -> tuple[np.ndarray, np.ndarray]:
    """Points of a curve sorted by rate, keeping only those better than every cheaper point.

    A codec reads "at its best": a setting that spends more rate for no more quality (or the same
    rate twice) never defines the curve. Non-finite points are dropped.
    """
    rates, values = np.asarray(rates, np.float64), np.asarray(values, np.float64)
    keep = np.isfinite(rates) & np.isfinite(values) & (rates > 0)
    order = np.lexsort((-values[keep], rates[keep]))
    front_r, front_v = [], []
    for r, v in zip(rates[keep][order], values[keep][order]):
        if front_v and (v <= front_v[-1] or r <= front_r[-1]):
            continue
        front_r.append(r)
        front_v.append(v)
    return np.asarray(front_r), np.asarray(front_v)


def value_at_rate(rates, values, rate: float) -> float | None:
    """A curve's quality at ``rate`` (pchip in log-rate over its Pareto front).

    Returns:
        The interpolated value, or ``None`` when ``rate`` lies outside the measured rates (or the
        front has fewer than two points and ``rate`` is not one of them): never extrapolated.
    """
    r, v = pareto_front(rates, values)
    if len(r) == 0 or not _finite(rate) or rate <= 0:
        return None
    if len(r) == 1:
        return float(v[0]) if math.isclose(rate, r[0], rel_tol=1e-9) else None
    if rate < r[0] * (1 - 1e-9) or rate > r[-1] * (1 + 1e-9):
        return None
    i = int(np.argmin(np.abs(r - rate)))
    if math.isclose(rate, r[i], rel_tol=1e-12):
        return float(v[i])  # a measured point: its own value, without interpolation round-off
    x = float(np.clip(math.log(rate), math.log(r[0]), math.log(r[-1])))
    return float(PchipInterpolator(np.log(r), v)(x))


def _points_at_rate(points: list[dict], rate: float, to_db, metric: str) -> float | None:
    """`value_at_rate` of one image's rows (their ``bpp`` and ``metric`` through ``to_db``)."""
    return value_at_rate(
        [p["bpp"] for p in points], [to_db(p.get(metric, float("nan"))) for p in points], rate
    )


def bootstrap_ci(values, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0):
    """Percentile bootstrap confidence interval of the mean over ``values`` (fixed seed).

    Returns:
        ``[lo, hi]``, or ``[nan, nan]`` for no values; ``[x, x]`` for a single value.
    """
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return [float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))]


def _summary(deltas: dict[str, float], outside: list[str], key: str) -> dict:
    values = list(deltas.values())
    return {
        key: float(np.mean(values)) if values else float("nan"),
        "ci95": bootstrap_ci(values),
        "n": len(values),
        "outside": len(outside),
        "images_outside": sorted(outside),
    }


def _by_image(rows: list[dict]) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for r in rows:
        out[r["image"]].append(r)
    return out


# ----------------------------------------------------------------------------------------------
# the comparisons


def matched_rate(model_rows: list[dict], codec_rows: list[dict], metric: str = "psnr") -> dict:
    """Mean over images of (model − codec) quality at the model's own rate on each image.

    Args:
        model_rows: one row per image (one model point), with ``image``, ``bpp`` and ``metric``.
        codec_rows: the codec's rows, several settings per image.
        metric: ``"psnr"`` (dB) or ``"ms_ssim"`` (compared in dB, see :func:`ms_ssim_db`).

    Returns:
        ``{"mean_db", "ci95": [lo, hi], "n", "outside", "images_outside", "not_finite",
        "per_image"}`` where ``per_image`` maps each compared image to its difference in dB and
        ``not_finite`` counts the model's points without a finite value (lossless, or MS-SSIM of
        an image under 161 pixels a side).

    Raises:
        ComparisonError: no model rows, an image the model has and the codec lacks, two rows of
            the model for one image, or an image of another size.
    """
    if not model_rows:
        raise ComparisonError("no model results to compare")
    name = codec_rows[0]["name"] if codec_rows else "the codec"
    _check_sizes(model_rows, codec_rows, name)
    codec_images = _by_image(codec_rows)
    to_db = ms_ssim_db if metric == "ms_ssim" else float
    deltas, outside, not_finite, seen = {}, [], [], set()
    for r in model_rows:
        image = r["image"]
        if image in seen:
            raise ComparisonError(f"two model points for {image}: compare one quality at a time")
        seen.add(image)
        if image not in codec_images:
            raise ComparisonError(f"{name} has no results for {image}")
        if not _finite(to_db(r.get(metric, float("nan")))):
            not_finite.append(image)  # e.g. a lossless image (PSNR inf) or MS-SSIM of a tiny one
            continue
        other = _points_at_rate(codec_images[image], r["bpp"], to_db, metric)
        if other is None:
            outside.append(image)
        else:
            deltas[image] = to_db(r[metric]) - other
    result = _summary(deltas, outside, "mean_db")
    result["not_finite"] = len(not_finite)
    result["per_image"] = deltas
    return result


def bd_rate_per_image(model_rows: list[dict], codec_rows: list[dict]) -> dict:
    """Mean over images of the per-image BD-rate (PSNR, pchip) of a model curve against a codec.

    Each image needs at least two model points and an overlap in PSNR with the codec's curve on
    that image; the others are counted in ``outside``.

    Returns:
        ``{"mean_pct", "ci95", "n", "outside", "images_outside"}`` (negative: the model saves rate).
    """
    from jaxlic.evaluation import bdrate

    codec_images = _by_image(codec_rows)
    deltas, outside = {}, []
    for image, points in _by_image(model_rows).items():
        if image not in codec_images:
            raise ComparisonError(
                f"{codec_rows[0]['name'] if codec_rows else 'codec'} has no results for {image}"
            )
        mr, mv = pareto_front([p["bpp"] for p in points], [p["psnr"] for p in points])
        cr, cv = pareto_front(
            [p["bpp"] for p in codec_images[image]], [p["psnr"] for p in codec_images[image]]
        )
        try:
            deltas[image] = bdrate.bd_rate(cr, cv, mr, mv)
        except bdrate.RDCurveError:
            outside.append(image)
    return _summary(deltas, outside, "mean_pct")


def gain_at_rate(test_rows: list[dict], base_rows: list[dict], rate: float, metric: str = "psnr") -> dict:
    """Mean over images of (test − base) quality, both read off their own curves at ``rate``.

    For two curves of models (an ablation: a variant against its baseline, or one seed against
    another), each image's curve of each model (Pareto front, pchip in log-rate) is read at the
    same ``rate``; the difference is averaged over images with a 95% bootstrap interval. Images
    where either curve does not reach ``rate`` are counted in ``outside``, never extrapolated.

    Returns:
        ``{"mean_db", "ci95", "n", "outside", "images_outside", "per_image"}``.

    Raises:
        ComparisonError: no rows on either side, or an image one side has and the other lacks.
    """
    if not test_rows or not base_rows:
        raise ComparisonError("no results to compare")
    test, base = _by_image(test_rows), _by_image(base_rows)
    if set(test) != set(base):
        raise ComparisonError(f"different images: {', '.join(sorted(set(test) ^ set(base)))}")
    to_db = ms_ssim_db if metric == "ms_ssim" else float
    deltas, outside = {}, []
    for image in sorted(test):
        values = [_points_at_rate(pts, rate, to_db, metric) for pts in (test[image], base[image])]
        if None in values:
            outside.append(image)
        else:
            deltas[image] = values[0] - values[1]
    result = _summary(deltas, outside, "mean_db")
    result["per_image"] = deltas
    return result


def _model_points(rows: list[dict]) -> dict[str, list[dict]]:
    """``{label: rows}``: one entry per model name, or per (name, quality) for a model curve."""
    by_name = defaultdict(list)
    for r in rows:
        by_name[r["name"]].append(r)
    out = {}
    for name, sel in by_name.items():
        qualities = sorted({r.get("quality") for r in sel}, key=lambda q: (q is None, q))
        if len(qualities) == 1:
            out[name] = sel
        else:
            for q in qualities:
                out[f"{name} q{q:g}" if isinstance(q, float) else f"{name} q{q}"] = [
                    r for r in sel if r.get("quality") == q
                ]
    return out


def compare(model_rows: list[dict], codec_rows: list[dict]) -> dict:
    """Every model point against every codec, per image at matched rate.

    Returns:
        ``{"matched_rate": {model: {codec: {"mean_db", "ci95", "n", "outside", "ms_ssim_mean_db",
        "ms_ssim_ci95", "mean_bpp"}}}, "bd_rate": {model: {codec: {...}}}}``; ``bd_rate`` only for
        models with several qualities per image.
    """
    codecs = defaultdict(list)
    for r in codec_rows:
        codecs[r["name"]].append(r)
    matched, bd = {}, {}
    for label, rows in _model_points(model_rows).items():
        matched[label] = {}
        for codec, crow in codecs.items():
            psnr = matched_rate(rows, crow, "psnr")
            ms = matched_rate(rows, crow, "ms_ssim")
            psnr.pop("per_image")
            psnr.update(
                ms_ssim_mean_db=ms["mean_db"],
                ms_ssim_ci95=ms["ci95"],
                mean_bpp=float(np.mean([r["bpp"] for r in rows])),
            )
            matched[label][codec] = psnr
    by_name = defaultdict(list)
    for r in model_rows:
        by_name[r["name"]].append(r)
    for name, rows in by_name.items():
        if len({r.get("quality") for r in rows}) > 1:
            bd[name] = {codec: bd_rate_per_image(rows, crow) for codec, crow in codecs.items()}
    return {"matched_rate": matched, "bd_rate": bd}


def same_points(test_rows: list[dict], base_rows: list[dict]) -> list[dict]:
    """The baseline's rows at the test's rate points (``quality``) only.

    Curves read between sparse points are biased: on the same two Kodak images, the shipped
    default's 3-point curve (rate parameters 1, 4, 7) against its own 11-point curve gave a
    per-image BD-rate of -9.6% and +0.21 dB at 0.1 bpp, and 0.7% / -0.02 dB against the
    same 3 points (results/default/README.md). Two variable-rate models compared at the same rate
    parameters share that bias.

    Raises:
        ComparisonError: the baseline lacks one of the test's points.
    """
    wanted = {r.get("quality") for r in test_rows}
    have = {r.get("quality") for r in base_rows}
    missing = sorted(q for q in wanted - have if q is not None)
    if missing:
        raise ComparisonError(
            f"the baseline has no results at rate point(s) {', '.join(f'{q:g}' for q in missing)}"
        )
    return [r for r in base_rows if r.get("quality") in wanted]


def versus(test_rows: list[dict], base_rows: list[dict], at_bpp=()) -> dict:
    """A model (or a variant) against a baseline model, per image at matched rate.

    Every point of the test model on every image is compared with the baseline's own curve on
    that image read at the rate the test's stream took (:func:`matched_rate`, the baseline in the
    codec's place, so it needs several points per image: a variable-rate model's curve or several
    qualities); a test curve also gets the per-image BD-rate. ``at_bpp`` also reads both curves at
    the same rates (:func:`gain_at_rate`).

    Args:
        test_rows: per-image rows of one model (its ``name`` labels it).
        base_rows: per-image rows of the baseline model, under another ``name``.
        at_bpp: rates (bits per pixel) at which to read both curves.

    Returns:
        ``{"test", "baseline", "matched_rate", "bd_rate", "at_bpp"}``: the first three as
        :func:`compare` returns them (the baseline in the codec's place), ``at_bpp`` maps each
        rate to :func:`gain_at_rate`'s result (without ``per_image``).

    Raises:
        ComparisonError: one side without rows or with several models, both sides under one
            name, or an image one side has and the other lacks.
    """
    names = []
    for side, rows in (("test", test_rows), ("baseline", base_rows)):
        found = sorted({r["name"] for r in rows})
        if len(found) != 1:
            raise ComparisonError(f"the {side} needs the rows of one model, got {', '.join(found) or 'none'}")
        names.append(found[0])
    if names[0] == names[1]:
        raise ComparisonError(f"both sides are named {names[0]}: relabel one")
    test_images, base_images = {r["image"] for r in test_rows}, {r["image"] for r in base_rows}
    if test_images != base_images:
        raise ComparisonError(f"different images: {', '.join(sorted(test_images ^ base_images))}")
    result = {"test": names[0], "baseline": names[1], **compare(test_rows, base_rows)}
    gains = {}
    for rate in at_bpp:
        gain = gain_at_rate(test_rows, base_rows, rate)
        gain.pop("per_image")
        gains[f"{rate:g}"] = gain
    result["at_bpp"] = gains
    return result


def _fmt(x: float, spec: str) -> str:
    return "n/a" if not _finite(x) else format(x, spec)


def table(result: dict) -> str:
    """The comparison (:func:`compare` or :func:`versus`) as a plain-text table, one line per
    (model point, codec or baseline)."""
    other = "baseline" if "baseline" in result else "codec"
    lines = [
        f"Per image at matched rate: model − {other}, mean over images [95% bootstrap CI]; "
        f"n compared, images outside the {other}'s measured rates"
    ]
    width = max([14] + [len(c) + 2 for per in result["matched_rate"].values() for c in per])
    left = max([24] + [len(m) + 2 for m in (*result["matched_rate"], *result.get("bd_rate", {}))])
    lines.append(
        f"{'model':<{left}}{'bpp':>8}  {other:<{width}}{'ΔPSNR dB':>9} {'95% CI':<17}{'ΔMS-SSIM dB':>12}{'n':>5}{'out':>5}"
    )
    for label, per_codec in result["matched_rate"].items():
        for codec, s in per_codec.items():
            ci = f"[{_fmt(s['ci95'][0], '+.2f')}, {_fmt(s['ci95'][1], '+.2f')}]"
            lines.append(
                f"{label:<{left}}{s['mean_bpp']:>8.4f}  {codec:<{width}}{_fmt(s['mean_db'], '+.2f'):>9} {ci:<17}"
                f"{_fmt(s['ms_ssim_mean_db'], '+.2f'):>12}{s['n']:>5}{s['outside']:>5}"
            )
    for name, per_codec in result.get("bd_rate", {}).items():
        for codec, s in per_codec.items():
            ci = f"[{_fmt(s['ci95'][0], '+.1f')}, {_fmt(s['ci95'][1], '+.1f')}]"
            lines.append(
                f"{name:<{left}}{'curve':>8}  {codec:<{width}}BD-rate {_fmt(s['mean_pct'], '+.1f')} % {ci}"
                f"  n={s['n']} outside={s['outside']}"
            )
    for rate, s in result.get("at_bpp", {}).items():
        ci = f"[{_fmt(s['ci95'][0], '+.3f')}, {_fmt(s['ci95'][1], '+.3f')}]"
        lines.append(
            f"{result['test']} − {result['baseline']}, both curves read at {rate} bpp: "
            f"{_fmt(s['mean_db'], '+.3f')} dB {ci}  n={s['n']} outside={s['outside']}"
        )
    return "\n".join(lines)
