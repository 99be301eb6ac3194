"""A milestone of the default model's long run: its Kodak curve, where it stands, and its z.

Run from the repository's root, with the run's exported weights (issue "The best default this
CPU can train"; commands of the campaign in results/default/README.md):

  python -m results.default.milestone --weights runs/long/export/ckbd-full-vr-q0.msgpack \\
      --run long --step 10000

1. ``jaxlic eval IMAGES --weights W --rates 0,1,...,7 --out runs/milestones/<run>-<step>``: real
   streams at 8 rate parameters (``--eval-dir`` reuses a finished one).
2. Per image at matched rate (``jaxlic.evaluation.matched.gain_at_rate``: each image's own two
   curves, read at the same rate; never extrapolated): against WebP, JPEG 2000 (by rate) and
   AVIF 4:4:4 of ``results/kodak/per_image_codecs.csv`` at :data:`AT_BPP`, and against the
   baseline model (``--baseline``, the shipped default's per-image file, at the same rate
   parameters: ``matched.same_points``): per-image BD-rate, and the difference at each of
   :data:`SHIP_BPP`.
3. z (``eval.latent_usage`` on the first 6 images at rate parameters 0, 3 and 7): its share of
   the rate and its live channels.
3b. Photos no model here has trained or been judged on (:data:`UNSEEN`, bundled with
   scikit-image, written to ``runs/unseen/``): the same comparison against WebP, JPEG 2000 and
   AVIF (run once, kept in ``results/default/unseen/``) and against the default on them (its
   float original, evaluated once at rate parameters 0-7 and kept there too). Five photos: a
   coarse check that what Kodak says holds elsewhere, not a second benchmark.
4. The record goes into ``results/default/progress.json`` (one entry per run and step, replaced
   when run again) and the table between the markers of ``results/default/README.md`` is
   rewritten from it.

Whether the milestone should replace the default (:func:`ships`, decision 5 of
results/default/README.md): its BD-rate against the default below 0 with a CI that excludes 0
(the issue's rule) and, at none of :data:`SHIP_BPP`, a loss whose CI excludes 0. The BD-rate
spans the whole curve in log-rate, so a large gain at the lowest rates can outweigh a loss at the
rates people use; the second condition keeps such a milestone from replacing the default.

The record keeps a copy of the milestone's per-image results (``milestones/per_image_<run>-
<step>.csv``), so that ``--refresh`` can recompute every record's standing after a change of
this script without evaluating anything again.

The targets of the issue are marked in the table: at least JPEG 2000 at 0.10-0.30 bpp and at
least WebP at 0.40 and 0.50 (the mean over images >= 0 dB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import subprocess
import sys

from eval import harness
from jaxlic.evaluation import matched

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "results" / "default"
AT_BPP = (0.10, 0.15, 0.20, 0.30, 0.40, 0.50)
CODECS = ("jpeg2000", "webp", "avif")
#: (codec, bpp) pairs the issue sets as targets: the default at least as good there.
TARGETS = tuple(
    (c, b) for c, bs in (("jpeg2000", (0.10, 0.15, 0.20, 0.30)), ("webp", (0.40, 0.50))) for b in bs
)
#: Where a milestone must not lose to the default to replace it (:func:`ships`).
SHIP_BPP = (0.10, 0.15, 0.20, 0.30, 0.40)
Z_RATES = (0, 3, 7)
#: Colour photos bundled with scikit-image (no download): never in training nor in a decision.
UNSEEN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
UNSEEN_DIR = HERE / "unseen"
DEFAULT_WEIGHTS = ROOT / "jaxlic" / "pretrained" / "archive" / "ckbd-full-vr-q0-53d4393ae095565b.msgpack"
BEGIN, END = "<!-- progress table: results/default/milestone.py -->", "<!-- end of progress table -->"


def standing(model_rows: list[dict], codec_rows: list[dict], base_rows: list[dict] | None) -> dict:
    """The model against each codec at each of :data:`AT_BPP`, and against the baseline model
    (both on the model's images: the others' files may hold more)."""
    images = {r["image"] for r in model_rows}
    codec_rows = [r for r in codec_rows if r["image"] in images]
    base_rows = [r for r in base_rows or () if r["image"] in images]
    by_codec: dict[str, list[dict]] = {}
    for r in codec_rows:
        by_codec.setdefault(r["name"], []).append(r)
    out: dict = {"at_bpp": {}, "curve": _curve(model_rows)}
    for codec in CODECS:
        if codec not in by_codec:
            continue
        out["at_bpp"][codec] = {}
        for bpp in AT_BPP:
            g = matched.gain_at_rate(model_rows, by_codec[codec], bpp)
            g.pop("per_image")
            out["at_bpp"][codec][f"{bpp:g}"] = g
    if base_rows:  # at the same rate parameters: sparse and dense curves read differently
        same = matched.same_points(model_rows, base_rows)
        out["versus_baseline"] = matched.bd_rate_per_image(model_rows, same)
        out["versus_baseline_at_bpp"] = {}
        for bpp in SHIP_BPP:
            g = matched.gain_at_rate(model_rows, same, bpp)
            g.pop("per_image")
            out["versus_baseline_at_bpp"][f"{bpp:g}"] = g
    return out


def _curve(rows: list[dict]) -> list[dict]:
    """Mean bpp and PSNR over the images at each rate parameter (for plots and the table only)."""
    points: dict = {}
    for r in rows:
        points.setdefault(r["quality"], []).append(r)
    return [
        {
            "rate": q,
            "bpp": sum(r["bpp"] for r in sel) / len(sel),
            "psnr": sum(r["psnr"] for r in sel) / len(sel),
            "images": len(sel),
        }
        for q, sel in sorted(points.items())
    ]


def targets_met(record: dict) -> dict[str, bool | None]:
    """``{"jpeg2000@0.1": True, ...}``: each target met (mean >= 0 dB), or None when unmeasured."""
    out = {}
    for codec, bpp in TARGETS:
        g = record["standing"]["at_bpp"].get(codec, {}).get(f"{bpp:g}")
        mean = None if not g or g.get("n", 0) == 0 else g["mean_db"]
        out[f"{codec}@{bpp:g}"] = None if mean is None else bool(mean >= 0)
    return out


def ships(record: dict) -> dict:
    """``{"ships": bool, "why": str}``: does the milestone beat the default (module docstring)?"""
    st = record["standing"]
    bd = st.get("versus_baseline")
    if not bd or not bd.get("n"):
        return {"ships": False, "why": "not compared with the default"}
    if not bd["ci95"][1] < 0:
        return {"ships": False, "why": f"BD-rate {_bd(bd)} against the default: its CI does not lie below 0"}
    losses = [
        f"{b} bpp {_cell(g)}"
        for b, g in st.get("versus_baseline_at_bpp", {}).items()
        if g.get("n") and g["ci95"][1] < 0
    ]
    if losses:
        return {"ships": False, "why": f"BD-rate {_bd(bd)}, but below the default at " + ", ".join(losses)}
    return {
        "ships": True,
        "why": f"BD-rate {_bd(bd)} and no loss at {', '.join(f'{b:g}' for b in SHIP_BPP)} bpp",
    }


def _cell(g: dict | None) -> str:
    if not g or not g.get("n"):
        return "n/a"
    lo, hi = g["ci95"]
    text = f"{g['mean_db']:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    return text if not g.get("outside") else f"{text} ({g['n']} img)"


def _bd(bd: dict | None) -> str:
    if not bd or not bd.get("n"):
        return "n/a"
    return f"{bd['mean_pct']:+.1f}% [{bd['ci95'][0]:+.1f}, {bd['ci95'][1]:+.1f}]"


def _versus(at_bpp: dict) -> str:
    """The differences to the default at :data:`SHIP_BPP`, '*' where the CI excludes 0."""
    cells = []
    for b in SHIP_BPP:
        g = at_bpp.get(f"{b:g}")
        if not g or not g.get("n"):
            cells.append("n/a")
            continue
        lo, hi = g["ci95"]
        cells.append(f"{g['mean_db']:+.2f}" + ("*" if lo > 0 or hi < 0 else ""))
    return "/".join(cells)


def table(progress: list[dict]) -> str:
    """The README's table: one row per milestone, in the order of the run's steps."""
    cols = [(c, b) for c, b in TARGETS] + [("avif", 0.15)]
    head = ["run", "step", "bpp range"] + [f"{c} @{b:g}" for c, b in cols]
    head += ["BD-rate vs default", "vs default @0.1/0.15/0.2/0.3/0.4 dB", "ships"]
    head += ["z share q0/q3/q7", "unseen: BD-rate vs default; webp @0.15"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in progress:
        curve = rec["standing"]["curve"]
        z = rec.get("z", {})
        z_text = "/".join(f"{100 * z[str(q)]['z_share']:.0f}%" for q in Z_RATES if str(q) in z) or "n/a"
        unseen = rec.get("unseen") or {}
        webp = unseen.get("at_bpp", {}).get("webp", {}).get("0.15")
        cells = [
            rec["run"],
            str(rec["step"]),
            f"{curve[0]['bpp']:.3f}-{curve[-1]['bpp']:.3f}" if curve else "n/a",
            *(_cell(rec["standing"]["at_bpp"].get(c, {}).get(f"{b:g}")) for c, b in cols),
            _bd(rec["standing"].get("versus_baseline")),
            _versus(rec["standing"].get("versus_baseline_at_bpp", {})),
            "yes" if rec.get("ships", {}).get("ships") else "no",
            z_text,
            f"{_bd(unseen.get('versus_baseline'))}; {_cell(webp)}" if unseen else "n/a",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update(progress_path: pathlib.Path, readme: pathlib.Path, record: dict) -> list[dict]:
    """Puts `record` into the progress file (replacing its run and step) and the README's table."""
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else []
    progress = [p for p in progress if (p["run"], p["step"]) != (record["run"], record["step"])]
    progress.append(record)
    progress.sort(key=lambda p: (p["run"], p["step"]))
    save(progress_path, readme, progress)
    return progress


def save(progress_path: pathlib.Path, readme: pathlib.Path, progress: list[dict]) -> None:
    """Writes the progress file and rewrites the table between the README's markers."""
    harness.write_json(progress_path, progress)
    text = readme.read_text() if readme.exists() else ""
    block = f"{BEGIN}\n{table(progress)}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Progress of the long run\n\n" + block + "\n"
    readme.write_text(text)


def z_usage(weights: str, images: str, num: int = 6) -> dict:
    """``eval.latent_usage`` at each of :data:`Z_RATES`: z's share and live channels."""
    from eval.latent_usage import latent_usage
    from jaxlic import image_io, zoo

    codec = zoo.load(weights=weights)
    imgs = [image_io.read_image(f)[0] for f in image_io.list_images(images, num)]
    out = {}
    for q in Z_RATES:
        u = latent_usage(codec, imgs, rate=q)
        out[str(q)] = {k: u[k] for k in ("bpp", "bpp_z", "z_share", "z_live_channels", "y_live_channels")}
    return out


def write_unseen(folder: pathlib.Path) -> pathlib.Path:
    """The :data:`UNSEEN` photos as PNGs in `folder` (written once)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in UNSEEN:
        path = folder / f"{name}.png"
        if not path.exists():
            img = np.ascontiguousarray(getattr(skimage.data, name)()[:, :, :3].astype(np.uint8))
            Image.fromarray(img).save(path)
    return folder


def _model_csv(out: pathlib.Path) -> pathlib.Path:
    csvs = [p for p in sorted(out.glob("per_image_*.csv")) if p.name != "per_image_codecs.csv"]
    if len(csvs) != 1:
        raise SystemExit(f"error: expected one model's per_image_*.csv in {out}, found {len(csvs)}")
    return csvs[0]


def _eval(
    images: str, weights: str, rates: str, out: pathlib.Path, codecs: str | None = None
) -> pathlib.Path:
    """``jaxlic eval`` of `weights` (and `codecs`) on `images` into `out`; the model's CSV."""
    cmd = [sys.executable, "-m", "jaxlic.cli", "eval", images, "--weights", weights, "--rates", rates]
    subprocess.run(
        [*cmd, "--out", str(out), "--force", *(["--codecs", codecs] if codecs else [])], check=True
    )
    return _model_csv(out)


def unseen_standing(weights: str, rates: str, work: pathlib.Path) -> dict:
    """:func:`standing` on the :data:`UNSEEN` photos (codecs and the default evaluated once)."""
    images = str(write_unseen(ROOT / "runs" / "unseen"))
    codecs_csv, base_csv = UNSEEN_DIR / "per_image_codecs.csv", UNSEEN_DIR / "per_image_default.csv"
    if not codecs_csv.exists() or not base_csv.exists():
        out = work / "unseen-default"
        model_csv = _eval(
            images, str(DEFAULT_WEIGHTS), ",".join(map(str, range(8))), out, "webp,jpeg2000,avif"
        )
        UNSEEN_DIR.mkdir(parents=True, exist_ok=True)
        codecs_csv.write_bytes((out / "per_image_codecs.csv").read_bytes())
        base_csv.write_bytes(model_csv.read_bytes())
    model_rows = matched.read_rows(_eval(images, weights, rates, work / "unseen"))
    return standing(model_rows, matched.read_rows(codecs_csv), matched.read_rows(base_csv))


def keep_rows(csv: pathlib.Path, progress: pathlib.Path, run: str, step: int) -> str:
    """A copy of a milestone's per-image results in ``milestones/`` beside the progress file
    (committed with the record); its path from the repository's root where it lies inside."""
    kept = progress.resolve().parent / "milestones" / f"per_image_{run}-{step}.csv"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(csv.read_bytes())
    return str(kept.relative_to(ROOT)) if kept.is_relative_to(ROOT) else str(kept)


def judge(record: dict) -> None:
    """Sets a record's ``targets_met`` and ``ships`` from its standing."""
    record["targets_met"] = targets_met(record)
    record["ships"] = ships(record)


def refresh(args) -> list[dict]:
    """Every record's standing, targets and verdict again, from its kept per-image results; the
    records."""
    progress_path = pathlib.Path(args.progress)
    progress = json.loads(progress_path.read_text())
    codec_rows = matched.read_rows(args.codecs_csv)
    base_rows = matched.read_rows(args.baseline) if args.baseline else None
    for record in progress:
        csv = ROOT / record["per_image_csv"]
        if not csv.exists():
            raise SystemExit(
                f"error: {record['run']} {record['step']}: {csv} is gone; run the milestone again"
            )
        record["standing"] = standing(matched.read_rows(csv), codec_rows, base_rows)
        judge(record)
    save(progress_path, pathlib.Path(args.readme), progress)
    return progress


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="the run's exported variable-rate weights")
    ap.add_argument("--run", help="the run's name (e.g. long)")
    ap.add_argument("--step", type=int, help="the training step of the weights")
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--rates", default="0,1,2,3,4,5,6,7")
    ap.add_argument("--eval-dir", help="a finished jaxlic eval of these weights (skips step 1)")
    ap.add_argument("--codecs-csv", default=str(ROOT / "results" / "kodak" / "per_image_codecs.csv"))
    ap.add_argument("--baseline", default=str(HERE / "per_image_ckbd-full-vr-4000steps.csv"))
    ap.add_argument("--progress", default=str(HERE / "progress.json"))
    ap.add_argument("--readme", default=str(HERE / "README.md"))
    ap.add_argument("--no-unseen", action="store_true", help="skip the check on unseen photos")
    ap.add_argument(
        "--refresh",
        action="store_true",
        help="recompute every record from its kept results (evaluates nothing)",
    )
    args = ap.parse_args(argv)
    if args.refresh:
        progress = judged = refresh(args)
    elif args.weights and args.run and args.step is not None:
        progress, record = record_milestone(args, argv)
        judged = [record]
    else:
        ap.error("--weights, --run and --step are required (or --refresh)")
    print(table(progress))
    for rec in judged:
        name, met = f"{rec['run']} {rec['step']}", [k for k, v in rec["targets_met"].items() if v]
        print(f"{name}: targets met: {len(met)} of {len(TARGETS)}" + (f" ({', '.join(met)})" if met else ""))
        print(f"{name}: {'ships' if rec['ships']['ships'] else 'does not ship'}: {rec['ships']['why']}")
    return 0


def record_milestone(args, argv) -> tuple[list[dict], dict]:
    """Steps 1-4 of the module docstring for one milestone: (the progress records, its record)."""
    run = harness.Run("results.default.milestone", argv)
    out = pathlib.Path(args.eval_dir or ROOT / "runs" / "milestones" / f"{args.run}-{args.step}")
    csv = _model_csv(out) if args.eval_dir else _eval(args.images, args.weights, args.rates, out)
    model_rows = matched.read_rows(csv)
    codec_rows = matched.read_rows(args.codecs_csv)
    base_rows = matched.read_rows(args.baseline) if args.baseline else None
    record = {
        "run": args.run,
        "step": args.step,
        "weights": args.weights,
        "weights_sha256": hashlib.sha256(pathlib.Path(args.weights).read_bytes()).hexdigest(),
        "per_image_csv": keep_rows(csv, pathlib.Path(args.progress), args.run, args.step),
        "standing": standing(model_rows, codec_rows, base_rows),
        "z": z_usage(args.weights, args.images),
        "unseen": None if args.no_unseen else unseen_standing(args.weights, args.rates, out),
        "provenance": run.provenance(),
    }
    judge(record)
    return update(pathlib.Path(args.progress), pathlib.Path(args.readme), record), record


if __name__ == "__main__":
    sys.exit(main())
