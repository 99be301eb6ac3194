"""What variable rate costs: a variable-rate model against a fixed-lambda one, per image at matched rate.

A record of the finished study in this folder (README.md), run from the repository's root.

Both models start from the same weights and train for the same steps on the same batches; the
fixed one at one lambda, the variable-rate one over all of `jaxlic.models.registry.VR_LAMBDAS`.
Each image's variable-rate curve (a `jaxlic eval` sweep of its rate parameter) is read at the
rate the fixed model spent on that image; the cost is the mean of (variable-rate - fixed) PSNR
over images, with a 95% bootstrap interval (`jaxlic.evaluation.matched.matched_rate`).

  python -m results.vr_cost.vr_cost --fixed results/vr_cost/per_image_fixed.csv \\
      --vr results/vr_cost/per_image_vr.csv --runs runs/vrcost/fixed runs/vrcost/vr \\
      --json results/vr_cost/vr_cost.json

`--runs` adds each training run's steps and steps/s (median of the logged intervals, from the
exported weights' JSON and the run's log) to the output; the commands of the campaign are in
`results/vr_cost/README.md`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

from eval import harness
from jaxlic.evaluation import matched

_RATE = re.compile(r"step (\d+): loss .*\| ([0-9.]+) steps/s")


def run_record(workdir: pathlib.Path, log: pathlib.Path | None = None) -> dict:
    """Steps, model and median steps/s of a training run (its export JSON and its log)."""
    exports = sorted((workdir / "export").glob("*.json"))
    if not exports:
        raise SystemExit(f"error: {workdir} has no exported weights (export/*.json)")
    meta = json.loads(exports[-1].read_text())
    out = {
        "workdir": str(workdir),
        "weights": str(exports[-1].with_suffix(".msgpack")),
        "model": meta["model"],
        "lambdas": meta.get("lambdas", [meta.get("lmbda")]),
        "steps": int(meta["metrics"]["step"]),
    }
    rates = []
    if log is not None and log.is_file():
        # The first logged interval holds the compilation; a resumed run logs a new first one.
        per_start, last = [], None
        for line in log.read_text(errors="replace").splitlines():
            m = _RATE.search(line)
            if m:
                step, rate = int(m.group(1)), float(m.group(2))
                if last is None or step <= last:
                    per_start.append([])
                per_start[-1].append(rate)
                last = step
        rates = [r for block in per_start for r in block[1:]]
    out["steps_per_s"] = harness.median(rates) if rates else None
    return out


def vr_cost(fixed_rows: list[dict], vr_rows: list[dict]) -> dict:
    """(variable-rate - fixed) PSNR at the fixed model's rate on each image, and its summary."""
    names = {r["name"] for r in fixed_rows}
    qualities = {r.get("quality") for r in fixed_rows}
    if len(names) != 1 or len(qualities) != 1:
        raise SystemExit("error: --fixed must hold one model at one quality")
    result = matched.matched_rate(fixed_rows, vr_rows)  # fixed - vr
    per_image = {k: -v for k, v in result["per_image"].items()}
    lo, hi = result["ci95"]
    fixed_bpp = [r["bpp"] for r in fixed_rows]
    return {
        "dpsnr_db": -result["mean_db"],
        "ci95": [-hi, -lo],
        "n": result["n"],
        "outside": result["outside"],
        "images_outside": result["images_outside"],
        "fixed_mean_bpp": sum(fixed_bpp) / len(fixed_bpp),
        "fixed_mean_psnr": sum(r["psnr"] for r in fixed_rows) / len(fixed_rows),
        "per_image": per_image,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixed", required=True, type=pathlib.Path, help="per_image CSV of the fixed model")
    p.add_argument("--vr", required=True, type=pathlib.Path, help="per_image CSV of the variable-rate sweep")
    p.add_argument("--runs", nargs=2, type=pathlib.Path, metavar=("FIXED_DIR", "VR_DIR"))
    p.add_argument("--logs", nargs=2, type=pathlib.Path, metavar=("FIXED_LOG", "VR_LOG"))
    p.add_argument("--json", type=pathlib.Path)
    args = p.parse_args(argv)
    run = harness.Run("results.vr_cost.vr_cost", argv)
    try:
        out = vr_cost(matched.read_rows(args.fixed), matched.read_rows(args.vr))
    except matched.ComparisonError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.runs:
        logs = args.logs or (None, None)
        out["runs"] = {
            "fixed": run_record(args.runs[0], logs[0]),
            "variable_rate": run_record(args.runs[1], logs[1]),
        }
    lo, hi = out["ci95"]
    print(
        f"variable rate - fixed at the fixed model's rate (mean {out['fixed_mean_bpp']:.4f} bpp, "
        f"{out['fixed_mean_psnr']:.2f} dB): {out['dpsnr_db']:+.3f} dB, 95% CI [{lo:+.3f}, {hi:+.3f}], "
        f"{out['n']} images ({out['outside']} outside the variable-rate curve)"
    )
    for side, rec in out.get("runs", {}).items():
        rate = f"{rec['steps_per_s']:.3f} steps/s" if rec["steps_per_s"] else "steps/s not logged"
        print(f"  {side}: {rec['model']}, {rec['steps']} steps, {rate}")
    if args.json:
        harness.write_json(args.json, {**out, "provenance": run.provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
