"""Ablation table: what each addition to the checkerboard baseline buys, next to the seed's claims.

Per image at matched rate (issue "Honest comparisons"): each variant's curve on each Kodak image
(``jaxlic eval``'s ``per_image_<name>.csv``: real bitstreams, several rate points per image) is
read at 0.15 bpp and compared with ``ckbd``'s curve on the same image at the same rate; the
differences are averaged over images with a 95% bootstrap interval
(``jaxlic.evaluation.matched.gain_at_rate``). BD-rate against ``ckbd`` is the per-image BD-rate
averaged the same way. The averaged curves in the JSON and the plot are for plotting only.

    ckbd        checkerboard context model (He et al. 2021), the baseline
    ckbd-attn   + FDRAM attention
    ckbd-gmm    + Gaussian-mixture entropy model
    ckbd-pp     + post-processing
    ckbd-full   all of them

    jaxlic eval ../shared/data/kodak --weights runs/ablation/ckbd-s0/export/ckbd-vr-q0.msgpack --out runs/abl/ckbd
    python -m eval.ablation --variant ckbd=runs/abl/ckbd/per_image_ckbd-vr.csv \\
        --variant ckbd-full=runs/abl/full/per_image_ckbd-full-vr.csv [--variant ...] \\
        [--second-seed ckbd=... --second-seed ckbd-full=...] [--weights ckbd=W ...] \\
        --out results/ablation

Writes ``ablation.json`` (``{"variants": {name: {"steps", "seed", "curve": {"bpp", "psnr"},
"weights", "decode_s", "gflops_768x512"}}, "vs_ckbd": {name: {"dpsnr_at_0.15", "ci95", "n", "outside",
"bd_rate", "bd_rate_ci95", "by_rate": {bpp: {"mean_db", "ci95", "n"}}}}, "seed_spread_db", "seed_spread":
{name: {"mean_db", "ci95", "n", "bd_rate", "bd_rate_ci95", "by_rate"}} (second seed − first),
"vs_ckbd_over_seeds": {name: {"per_seed_db", "per_seed_ci95", "per_seed_bd_rate", "mean_db", "ci95", "n",
"by_rate"}}
(where both the variant and the baseline have a second seed), "claims", "provenance"}``),
``table.md`` (ours beside the claims) and ``rd.png``. ``steps`` and ``seed`` come from a
variant's weights file when given (its metadata), ``decode_s`` is the decoding time of
kodim23 at the variant's point nearest 0.15 bpp: by default the one its ``jaxlic eval`` run
recorded, or with ``--decode-times`` the median of ``python -m eval.decode_time`` (all files
decoded side by side in interleaved rounds; ``decode_source`` says which), ``gflops_768x512`` (with ``--flops``) XLA's count
of the variant's rounding pass on a 768 x 512 image. ``by_rate`` is the same per-image gain at
each of ``GAIN_RATES``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from collections import defaultdict

import numpy as np

from eval import harness
from jaxlic.errors import JaxlicError
from jaxlic.evaluation import matched

BASELINE = "ckbd"
VARIANTS = ("ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full")
RATE = 0.15
#: The rates each variant's gain over the baseline is also read at (``vs_ckbd[name]["by_rate"]``).
GAIN_RATES = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: The seed's claims: PSNR gains at about 0.15 bpp on Kodak over the checkerboard baseline (dB).
CLAIMED_GAIN_DB = {"ckbd-attn": 0.23, "ckbd-gmm": 0.25, "ckbd-pp": 0.13, "ckbd-full": 0.37}
CLAIMED_DECODING = "checkerboard decoding far faster than a serial context"
DECODE_IMAGE = "kodim23"


def _named_paths(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise JaxlicError(f"{flag} takes NAME=PATH, not {item!r}")
        if name != BASELINE and name not in VARIANTS:
            raise JaxlicError(
                f"{flag}: unknown variant {name!r} (expected {BASELINE} or one of {', '.join(VARIANTS)})"
            )
        out[name] = path
    return out


def averaged_curve(rows: list[dict]) -> dict:
    """Mean bpp and PSNR over images per rate point (``quality``), for plots only."""
    points = defaultdict(list)
    for r in rows:
        points[r.get("quality")].append(r)
    curve = sorted(
        (float(np.mean([r["bpp"] for r in p])), float(np.mean([r["psnr"] for r in p])))
        for p in points.values()
    )
    return {"bpp": [b for b, _ in curve], "psnr": [p for _, p in curve]}


def decode_seconds(rows: list[dict], image: str = DECODE_IMAGE, rate: float = RATE) -> float | None:
    """Decoding time of ``image`` (a file name without its suffix, as `jaxlic eval`'s rows name
    files with theirs) at the point nearest ``rate`` (None without that image or time)."""
    sel = [
        r
        for r in rows
        if pathlib.PurePath(r["image"]).stem == image and isinstance(r.get("decoding_time"), float)
    ]
    if not sel:
        return None
    return float(min(sel, key=lambda r: abs(math.log(r["bpp"] / rate)))["decoding_time"])


def model_flops(weights_path: str, height: int = 512, width: int = 768) -> float:
    """XLA's FLOP count of a variant's whole rounding pass (`forward_eval`: g_a, hyperprior,
    entropy parameters, g_s, post-processing) on a ``height`` x ``width`` image; a variable-rate
    model is counted at its default rate. Nothing is executed (`jaxlic.layers.flops`)."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from jaxlic import zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.layers.flops import flops  # pylint: disable=g-import-not-at-top

    codec = zoo.load(weights=weights_path)
    rate = (jnp.float32(codec.default_rate),) if codec.cfg.num_rates > 0 else ()
    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    return flops(codec.model, image, *rate, variables=codec.variables, method="forward_eval")


def _weights_meta(path: str) -> dict:
    """`{"steps", "seed"}` of a weights file as the trainer exports it (`metrics.step`,
    `train_config.seed`); None where the file does not say."""
    from jaxlic import weights as weights_io  # pylint: disable=g-import-not-at-top

    _, meta = weights_io.load(path)
    return {
        "steps": (meta.get("metrics") or {}).get("step"),
        "seed": (meta.get("train_config") or {}).get("seed"),
    }


def ablation(
    rows: dict[str, list[dict]],
    second: dict[str, list[dict]] | None = None,
    weights=None,
    rate=RATE,
    count_flops=False,
    decode_times: dict | None = None,
) -> dict:
    """The ablation record (see the module docstring) from per-image rows by variant name.

    ``decode_times``: ``python -m eval.decode_time``'s JSON record, whose medians replace the
    decoding times of the per-image rows.

    Raises:
        JaxlicError: the baseline is missing, or the variants were measured on different images.
    """
    if BASELINE not in rows:
        raise JaxlicError(f"no {BASELINE!r} results among {', '.join(sorted(rows)) or 'none'}")
    weights = weights or {}
    key = f"dpsnr_at_{rate:g}"
    variants, vs = {}, {}
    for name in (BASELINE, *VARIANTS):
        if name not in rows:
            continue
        meta = _weights_meta(weights[name]) if name in weights else {}
        variants[name] = {
            "steps": meta.get("steps"),
            "seed": meta.get("seed"),
            "curve": averaged_curve(rows[name]),
            "weights": weights.get(name),
            "decode_s": (
                decode_seconds(rows[name], rate=rate)
                if decode_times is None
                else (decode_times["results"].get(name) or {}).get("decode_s")
            ),
            "gflops_768x512": model_flops(weights[name]) / 1e9 if count_flops and name in weights else None,
        }
        if name == BASELINE:
            continue
        gain, curve = _versus(rows[name], rows[BASELINE], rate)
        vs[name] = {
            key: gain["mean_db"],
            "ci95": gain["ci95"],
            "n": gain["n"],
            "outside": gain["outside"],
            **curve,
            "claimed_db": CLAIMED_GAIN_DB[name],
        }
    # second seed − first, like a variant against the baseline: at ``rate``, BD-rate, by rate
    spread = {}
    for name, other in (second or {}).items():
        if name in rows:
            gain, curve = _versus(other, rows[name], rate)
            spread[name] = {**_gain_summary(gain), **curve}
    return {
        "variants": variants,
        "vs_ckbd": vs,
        "vs_ckbd_over_seeds": _over_seeds(rows, second or {}, rate),
        "seed_spread_db": max((abs(s["mean_db"]) for s in spread.values()), default=None),
        "seed_spread": spread,
        "claims": {"gain_db_at_0.15": CLAIMED_GAIN_DB, "decoding": CLAIMED_DECODING},
        "decode_source": (
            "each variant's own `jaxlic eval` run (not side by side)"
            if decode_times is None
            else f"side by side: {decode_times['command']}"
        ),
    }


def _over_seeds(rows: dict[str, list[dict]], second: dict[str, list[dict]], rate: float) -> dict:
    """Each variant against the baseline on every seed both have, and the mean over those seeds.

    A variant's second seed is compared with the baseline's second seed (the same seed, so the
    same data order), image by image; ``mean_db`` averages each image's two paired gains before
    the mean over images, and its interval is over images (it says nothing of more seeds).
    ``by_rate``: the same mean over seeds at each of ``GAIN_RATES``.
    """
    if BASELINE not in second:
        return {}

    def mean_over_seeds(name: str, at: float) -> tuple[list[dict], dict]:
        gains = [matched.gain_at_rate(r[name], r[BASELINE], at) for r in (rows, second)]
        images = sorted(set.intersection(*(set(g["per_image"]) for g in gains)))
        per_image = [sum(g["per_image"][i] for g in gains) / len(gains) for i in images]
        mean = float(sum(per_image) / len(per_image)) if per_image else float("nan")
        return gains, {"mean_db": mean, "ci95": matched.bootstrap_ci(per_image), "n": len(images)}

    out = {}
    for name in VARIANTS:
        if name not in rows or name not in second:
            continue
        gains, mean = mean_over_seeds(name, rate)
        out[name] = {
            "per_seed_db": [g["mean_db"] for g in gains],
            "per_seed_ci95": [g["ci95"] for g in gains],
            "per_seed_bd_rate": [
                matched.bd_rate_per_image(r[name], r[BASELINE])["mean_pct"] for r in (rows, second)
            ],
            **mean,
            "by_rate": {f"{r:g}": mean_over_seeds(name, r)[1] for r in GAIN_RATES},
        }
    return out


def _versus(rows: list[dict], base: list[dict], rate: float) -> tuple[dict, dict]:
    """``rows`` against ``base`` per image: the gain at ``rate``, and BD-rate with the by-rate gains."""
    bd = matched.bd_rate_per_image(rows, base)
    by_rate = {f"{r:g}": _gain_summary(matched.gain_at_rate(rows, base, r)) for r in GAIN_RATES}
    curve = {"bd_rate": bd["mean_pct"], "bd_rate_ci95": bd["ci95"], "by_rate": by_rate}
    return matched.gain_at_rate(rows, base, rate), curve


def _gain_summary(gain: dict) -> dict:
    """The mean, 95% CI and image count of a ``matched.gain_at_rate`` result."""
    return {"mean_db": gain["mean_db"], "ci95": gain["ci95"], "n": gain["n"]}


def _num(v, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def table_md(record: dict, rate: float = RATE) -> str:
    """Ours beside the seed's claims, as a Markdown table."""
    key = f"dpsnr_at_{rate:g}"
    lines = [
        f"| variant | ΔPSNR at {rate:g} bpp vs {BASELINE} (dB, 95% CI, images) | claimed (dB) | "
        f"BD-rate vs {BASELINE} | decode {DECODE_IMAGE} (s) | GFLOPs (768x512) |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in record["variants"].items():
        row = record["vs_ckbd"].get(name)
        if row is None:
            lines.append(
                f"| {name} (baseline) | — | — | — | {_num(v['decode_s'], '.2f')} | {_num(v['gflops_768x512'], '.1f')} |"
            )
            continue
        lo, hi = row["ci95"]
        outside = f", {row['outside']} outside" if row["outside"] else ""
        lines.append(
            f"| {name} | {_num(row[key], '+.3f')} [{_num(lo, '+.3f')}, {_num(hi, '+.3f')}] ({row['n']}{outside}) "
            f"| {row['claimed_db']:+.2f} | {_num(row['bd_rate'], '+.2f')} % | {_num(v['decode_s'], '.2f')} "
            f"| {_num(v['gflops_768x512'], '.1f')} |"
        )
    lines += ["", f"Decoding times: {record['decode_source']}."]
    if record["seed_spread"]:
        parts = ", ".join(
            f"{n} {_num(s['mean_db'], '+.3f')} dB [{_num(s['ci95'][0], '+.3f')}, {_num(s['ci95'][1], '+.3f')}]"
            f" ({s['n']}), BD-rate {_num(s.get('bd_rate'), '+.2f')} %"
            for n, s in record["seed_spread"].items()
        )
        lines += [
            "",
            f"Seed-to-seed difference at {rate:g} bpp (second seed − first, per image): {parts}. The brackets"
            " above are over images and do not include it.",
        ]
    for n, s in record.get("vs_ckbd_over_seeds", {}).items():
        seeds = " and ".join(_num(g, "+.3f") for g in s["per_seed_db"])
        lines += [
            "",
            f"{n} against {BASELINE} on each seed (first, second; same-seed pairs): {seeds} dB; mean over"
            f" the seeds {_num(s['mean_db'], '+.3f')} dB [{_num(s['ci95'][0], '+.3f')}, {_num(s['ci95'][1], '+.3f')}]"
            f" ({s['n']} images; the bracket is over images).",
        ]
    return "\n".join(lines) + "\n"


def _read_decode_times(path: str) -> dict:
    """``python -m eval.decode_time``'s JSON record (its ``results`` and ``command``)."""
    try:
        record = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        raise JaxlicError(f"--decode-times: cannot read {path}: {e}") from e
    if not isinstance(record, dict) or not isinstance(record.get("results"), dict) or "command" not in record:
        raise JaxlicError(f"--decode-times: {path} is not a record of python -m eval.decode_time")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.ablation", description=__doc__.split("\n")[0])
    p.add_argument("--variant", action="append", required=True, help="NAME=per_image CSV of `jaxlic eval`")
    p.add_argument("--second-seed", action="append", default=[], help="NAME=per_image CSV of a second seed")
    p.add_argument("--weights", action="append", default=[], help="NAME=weights file (steps, seed, path)")
    p.add_argument("--rate", type=float, default=RATE, help="bpp of the comparison (default 0.15)")
    p.add_argument("--flops", action="store_true", help="count each variant's FLOPs (needs --weights)")
    p.add_argument(
        "--decode-times", help="JSON of `python -m eval.decode_time` (side-by-side decoding times)"
    )
    p.add_argument("--out", help="folder for ablation.json, table.md and rd.png")
    args = p.parse_args(argv)
    run = harness.Run("eval.ablation", argv)
    try:
        rows = {n: matched.read_rows(path) for n, path in _named_paths(args.variant, "--variant").items()}
        second = {
            n: matched.read_rows(path) for n, path in _named_paths(args.second_seed, "--second-seed").items()
        }
        weights = _named_paths(args.weights, "--weights")
        decode_times = _read_decode_times(args.decode_times) if args.decode_times else None
        record = ablation(rows, second, weights, args.rate, count_flops=args.flops, decode_times=decode_times)
    except JaxlicError as e:
        print(f"ablation: error: {e}", file=sys.stderr)
        return 1
    table = table_md(record, args.rate)
    print(table, end="")
    if args.out:
        from jaxlic.evaluation.plots import plot_rd  # pylint: disable=g-import-not-at-top

        out = pathlib.Path(args.out)
        record["provenance"] = run.provenance()
        harness.write_json(out / "ablation.json", record, indent=1)
        (out / "table.md").write_text(table)
        curves = [
            {"name": n, "results": {"bpp": v["curve"]["bpp"], "psnr-rgb": v["curve"]["psnr"]}}
            for n, v in record["variants"].items()
        ]
        plot_rd(
            curves,
            out / "rd.png",
            title="Ablation on Kodak (averaged curves, for the plot only)",
            max_bpp=0.6,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
