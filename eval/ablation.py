"""Ablation table: what each addition to the checkerboard baseline buys, next to the claims.

Reads RD curves (CompressAI-format JSONs written by ``jaxlic eval``, one per variant, or
weight files whose metadata carries ``metrics`` with ``bpp`` and ``psnr``) for

    ckbd        checkerboard context model (He et al. 2021), the baseline
    ckbd-attn   + FDRAM attention
    ckbd-gmm    + Gaussian-mixture entropy model
    ckbd-pp     + post-processing
    ckbd-full   all of them

and prints the PSNR gain at 0.15 bpp over ``ckbd`` (pchip-interpolated in log-rate), the
BD-rate and BD-PSNR against ``ckbd``, and the claimed gains.

    python -m eval.ablation results/kodak/*.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from jaxlic.errors import JaxlicError
from jaxlic.evaluation import bdrate

BASELINE = "ckbd"
VARIANTS = ("ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full")
#: PSNR gains at 0.15 bpp over the checkerboard baseline, as claimed (dB).
CLAIMED_GAIN_DB = {"ckbd-attn": 0.23, "ckbd-gmm": 0.25, "ckbd-pp": 0.13, "ckbd-full": 0.37}


def _curve_from_weights(paths: list[str]) -> dict:
    from jaxlic import weights as weights_io

    name, bpp, psnr = None, [], []
    for path in paths:
        _, meta = weights_io.load(path)
        metrics = meta.get("metrics") or {}
        b, p = metrics.get("bpp"), metrics.get("psnr", metrics.get("psnr-rgb"))
        if b is None or p is None:
            raise JaxlicError(
                f"{path}: no bpp/psnr in the weights metadata; run `jaxlic eval` and pass its JSONs"
            )
        name = meta.get("model") or meta.get("name") or (meta.get("config") or {}).get("name") or name
        bpp.append(float(b))
        psnr.append(float(p))
    return {"name": name or os.path.basename(paths[0]), "results": {"bpp": bpp, "psnr-rgb": psnr}}


def load_curves(paths: list[str]) -> dict[str, dict]:
    """Curves by name from JSON files and/or weight files (weight files grouped by model)."""
    curves, weight_files = {}, {}
    for path in paths:
        if path.endswith(".json"):
            curve = bdrate.load_rd_json(path)
            curves[curve["name"]] = curve
        else:
            weight_files.setdefault("all", []).append(path)
    if weight_files:
        from jaxlic import weights as weights_io

        groups: dict[str, list[str]] = {}
        for path in weight_files["all"]:
            _, meta = weights_io.load(path)
            key = meta.get("model") or (meta.get("config") or {}).get("name") or path
            groups.setdefault(key, []).append(path)
        for files in groups.values():
            curve = _curve_from_weights(files)
            curves[curve["name"]] = curve
    return curves


def ablation_rows(curves: dict[str, dict], bpp: float = 0.15) -> list[dict]:
    """One row per present variant: measured gain at ``bpp``, BD-rate/BD-PSNR vs the baseline.

    Raises:
        JaxlicError: the baseline ``ckbd`` curve is missing.
    """
    if BASELINE not in curves:
        raise JaxlicError(f"no {BASELINE!r} curve among {', '.join(sorted(curves)) or 'none'}")
    base = curves[BASELINE]
    base_psnr = bdrate.psnr_at_bpp(base, bpp)
    rows = []
    for name in (BASELINE, *VARIANTS):
        if name not in curves:
            continue
        curve = curves[name]
        value = bdrate.psnr_at_bpp(curve, bpp)
        row = {
            "name": name,
            "psnr": value,
            "gain": value - base_psnr,
            "claimed": CLAIMED_GAIN_DB.get(name),
            "bd_rate": float("nan"),
            "bd_psnr": float("nan"),
        }
        if name != BASELINE:
            try:
                row["bd_rate"] = bdrate.bd_rate_curves(base, curve)
                row["bd_psnr"] = bdrate.bd_psnr_curves(base, curve)
            except bdrate.RDCurveError:
                pass
        rows.append(row)
    return rows


def format_table(rows: list[dict], bpp: float = 0.15) -> str:
    """The ablation table as text (``n/a`` where a curve does not reach ``bpp``)."""

    def num(v, fmt):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = [
        f"PSNR gain at {bpp} bpp over {BASELINE} (Kodak-style mean PSNR, pchip in log-rate)",
        f"{'model':<12}{'PSNR':>9}{'gain dB':>9}{'claimed':>9}{'BD-rate':>10}{'BD-PSNR':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['name']:<12}{num(r['psnr'], '.3f'):>9}{num(r['gain'], '+.3f'):>9}"
            f"{num(r['claimed'], '+.2f'):>9}{num(r['bd_rate'], '+.2f') + ' %':>10}"
            f"{num(r['bd_psnr'], '+.3f'):>9}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m eval.ablation FILES... [--bpp 0.15]``."""
    parser = argparse.ArgumentParser(prog="python -m eval.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="RD JSONs (or weight files) of the ckbd variants")
    parser.add_argument("--bpp", type=float, default=0.15)
    args = parser.parse_args(argv)
    try:
        print(format_table(ablation_rows(load_curves(args.files), args.bpp), args.bpp))
    except JaxlicError as e:
        print(f"ablation: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
