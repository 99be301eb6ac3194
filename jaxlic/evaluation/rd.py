"""Rate-distortion evaluation on a folder of images: the engine behind ``jaxlic eval``.

For every image, every model/quality (through ``jaxlic.zoo``) and every classical codec/quality
(``eval/codecs.py``) it measures the real rate from the size of the actual bitstream (container
header included), the model's own rate estimate, PSNR over RGB, 5-scale MS-SSIM and encode/decode
wall-clock times. It writes into the output folder:

* ``<name>.json`` per model and codec in CompressAI's format (means over images per quality,
  sorted by bpp; models also get ``bpp_estimated`` and ``bpp_real_over_estimated``),
* ``per_image.csv`` with one row per image and setting,
* ``rd_psnr.png`` and ``rd_ms-ssim.png`` (optionally with published anchors),

and prints a summary table. Example::

    jaxlic eval data/kodak --models ckbd,ckbd-full --codecs jpeg,webp,avif \
        --anchors ../shared/anchors/kodak-published --out results/kodak
"""

from __future__ import annotations

import csv
import json
import math
import os
import time

import numpy as np

from jaxlic.errors import JaxlicError
from jaxlic.evaluation import bdrate, matched, plots
from jaxlic.evaluation import codecs as classical
from jaxlic.image_io import list_images, read_image
from jaxlic.metrics import ms_ssim_or_nan, psnr

CSV_FIELDS = matched.FIELDS


def measure_model(codec, img: np.ndarray, keep_recon: bool = False) -> dict:
    """Compresses and decompresses ``img`` with a model codec; rate from the real stream.

    Args:
        codec: object with ``name``, ``quality``, ``compress``, ``decompress`` and optionally
            ``estimate_bpp`` (see ``jaxlic.zoo.load``).
        img: ``uint8 [H, W, 3]``.
        keep_recon: also return the decoded image (``recon``), for the visual report.

    Returns:
        dict with ``bpp``, ``bpp_estimated`` (nan if unavailable), ``psnr``, ``ms_ssim``,
        ``encoding_time``, ``decoding_time``, ``size_bytes`` (and ``recon``).
    """
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    data = codec.compress(img)
    t1 = time.perf_counter()
    recon = codec.decompress(data)
    t2 = time.perf_counter()
    if recon.shape != img.shape:
        raise JaxlicError(f"{codec.name} decoded a {recon.shape} image from a {img.shape} input")
    estimate = getattr(codec, "estimate_bpp", None)
    result = {
        "bpp": 8.0 * len(data) / (h * w),
        "bpp_estimated": float(estimate(img)) if callable(estimate) else float("nan"),
        "psnr": psnr(img, recon),
        "ms_ssim": ms_ssim_or_nan(img, recon),
        "encoding_time": t1 - t0,
        "decoding_time": t2 - t1,
        "size_bytes": len(data),
    }
    if keep_recon:
        result["recon"] = recon
    return result


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def _json_number(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def aggregate(rows: list[dict], name: str, kind: str, description: str = "") -> dict:
    """One CompressAI-format curve from per-image rows of one model or codec.

    Per quality the metrics are averaged over images (as CompressAI does: mean PSNR, mean bpp),
    then the points are sorted by bpp. Non-finite values are written as ``null``.
    """
    qualities = sorted({r["quality"] for r in rows})
    points = []
    for q in qualities:
        sel = [r for r in rows if r["quality"] == q]
        point = {
            "quality": q,
            "bpp": _mean(r["bpp"] for r in sel),
            "psnr-rgb": _mean(r["psnr"] for r in sel),
            "ms-ssim-rgb": _mean(r["ms_ssim"] for r in sel),
            "encoding_time": _mean(r["encoding_time"] for r in sel),
            "decoding_time": _mean(r["decoding_time"] for r in sel),
        }
        if kind == "model":
            point["bpp_estimated"] = _mean(r["bpp_estimated"] for r in sel)
            point["bpp_real_over_estimated"] = (
                point["bpp"] / point["bpp_estimated"]
                if point["bpp_estimated"] and math.isfinite(point["bpp_estimated"])
                else float("nan")
            )
        points.append(point)
    points.sort(key=lambda p: p["bpp"])
    keys = list(points[0]) if points else ["quality", "bpp", "psnr-rgb", "ms-ssim-rgb"]
    results = {k: [_json_number(p[k]) for p in points] for k in keys}
    # CompressAI's own evaluation writes "ms-ssim-rgb"; some tools read "ms-ssim".
    results["ms-ssim"] = list(results.get("ms-ssim-rgb", []))
    return {"name": name, "description": description, "results": results}


class RefinedCodec:
    """A model codec that refines each image's latents for `steps` steps before coding them.

    Evaluated as its own curve, named `<model>+refine<steps>` (`+refine<steps>-ste` for the
    straight-through method): the same decoder reads its streams, so the difference to the plain
    curve is the encoder's amortization gap that refinement closes.
    """

    def __init__(self, codec, steps: int, method: str = "sga"):
        self.codec, self.steps, self.method = codec, int(steps), method
        self.name = f"{codec.name}+refine{self.steps}" + ("" if method == "sga" else f"-{method}")
        self.quality = codec.quality

    def compress(self, img: np.ndarray) -> bytes:
        return self.codec.compress(img, refine_steps=self.steps, refine_method=self.method)

    def decompress(self, data: bytes) -> np.ndarray:
        return self.codec.decompress(data)

    def estimate_bpp(self, img: np.ndarray) -> float:
        """The model's rate of the latents that the last `compress` (of `img`) coded."""
        r = self.codec.last_refine
        return self.codec.estimate_bpp_of_latents(r["y"], r["z"], img.shape[:2])

    def warm_up(self, img: np.ndarray) -> None:
        """Compiles everything with a one-step refinement (the step is the same for any count)."""
        self.codec.decompress(self.codec.compress(img, refine_steps=1, refine_method=self.method))


def _warm_up(codec, img, seen: set) -> None:
    """Runs a model once per image shape before timing, so timings exclude JIT compilation."""
    key = (id(codec), img.shape)
    if key not in seen:
        if hasattr(codec, "warm_up"):
            codec.warm_up(img)
        else:
            codec.decompress(codec.compress(img))
        seen.add(key)


def evaluate(
    image_paths: list[str],
    model_codecs: list,
    codec_sweeps: dict[str, list[int]],
    progress: bool = True,
    keep=None,
) -> tuple[list[dict], list[str]]:
    """Measures every model codec and classical codec setting on every image.

    Args:
        image_paths: image files.
        model_codecs: loaded model codecs (``jaxlic.zoo.load`` results); each is one RD point.
        codec_sweeps: ``{classical codec name: [qualities]}``.
        progress: show a tqdm progress bar.
        keep: ``keep(row, img, recon)`` after each decode, before the decoded image is dropped
            (``jaxlic.evaluation.report.Report.add``); an image's models come before its codecs.

    Returns:
        ``(rows, notes)``: one dict per (image, setting) with the :data:`CSV_FIELDS`, and
        human-readable notes about image conversions.
    """
    from tqdm import tqdm

    rows, notes, seen = [], [], set()
    total = len(image_paths) * (len(model_codecs) + sum(len(q) for q in codec_sweeps.values()))
    bar = tqdm(total=total, disable=not progress, unit="run", dynamic_ncols=True)
    try:
        for path in image_paths:
            img, image_notes = read_image(path)
            notes += [f"{os.path.basename(path)}: {n}" for n in image_notes]
            h, w = img.shape[:2]
            base = {"image": os.path.basename(path), "height": h, "width": w}
            for codec in model_codecs:
                bar.set_description(f"{base['image']} {codec.name} q{_quality_label(codec.quality)}")
                _warm_up(codec, img, seen)
                m = measure_model(codec, img, keep_recon=keep is not None)
                recon = m.pop("recon", None)
                rows.append({**base, "kind": "model", "name": codec.name, "quality": codec.quality, **m})
                if keep is not None:
                    keep(rows[-1], img, recon)
                bar.update()
            for name, qualities in codec_sweeps.items():
                for q in qualities:
                    bar.set_description(f"{base['image']} {name} q{q}")
                    r = classical.run_codec(name, img, q)
                    rows.append(
                        {
                            **base,
                            "kind": "codec",
                            "name": name,
                            "quality": q,
                            "bpp_estimated": float("nan"),
                            **{
                                k: r[k]
                                for k in (
                                    "bpp",
                                    "psnr",
                                    "ms_ssim",
                                    "encoding_time",
                                    "decoding_time",
                                    "size_bytes",
                                )
                            },
                        }
                    )
                    if keep is not None:
                        keep(rows[-1], img, r["recon"])
                    bar.update()
    finally:
        bar.close()
    return rows, notes


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in CSV_FIELDS})


def per_image_csv_name(kind: str, name: str) -> str:
    """``per_image_codecs.csv`` for the classical codecs, ``per_image_<model>.csv`` per model."""
    return "per_image_codecs.csv" if kind == "codec" else f"per_image_{name}.csv"


def write_results(
    rows: list[dict], out_dir: str, dataset: str = "", anchors_dir=None, backends: dict | None = None
) -> dict[str, dict]:
    """Writes per-curve JSONs, the per-image CSVs and the RD plots; returns the curves by name.

    Per-image rows go to ``per_image_codecs.csv`` (all classical codecs) and
    ``per_image_<model>.csv`` (one per model curve): the inputs of :mod:`jaxlic.evaluation.matched`.
    The curves averaged over images (``<name>.json``, CompressAI's format) are for plots.
    """
    os.makedirs(out_dir, exist_ok=True)
    curves = {}
    for kind, name in sorted({(r["kind"], r["name"]) for r in rows}):
        sel = [r for r in rows if r["name"] == name and r["kind"] == kind]
        n_images = len({r["image"] for r in sel})
        backend = (backends or {}).get(name, "")
        desc = f"jaxlic model {name}" if kind == "model" else f"{name} ({backend})" if backend else name
        curve = aggregate(sel, name, kind, f"{desc}, {n_images} images of {dataset}".strip())
        curves[name] = curve
        with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(curve, f, indent=2)
    for kind, name in sorted({(r["kind"], r["name"] if r["kind"] == "model" else "") for r in rows}):
        sel = [r for r in rows if r["kind"] == kind and (kind == "codec" or r["name"] == name)]
        _write_csv(os.path.join(out_dir, per_image_csv_name(kind, name)), sel)
    for metric, file in (("psnr-rgb", "rd_psnr.png"), ("ms-ssim-db", "rd_ms-ssim.png")):
        anchors = plots.load_anchor_dir(anchors_dir, metric) if anchors_dir else []
        plots.plot_rd(
            list(curves.values()), os.path.join(out_dir, file), metric, anchors, title=f"{dataset} ({metric})"
        )
    return curves


def provenance(command: str | None = None) -> dict:
    """Where a result came from: the command line, the machine, and the library versions."""
    import platform
    import sys

    import jax

    return {
        "command": command if command is not None else " ".join(["jaxlic", *sys.argv[1:]]),
        "machine": f"{_cpu_name() or platform.machine()}, {os.cpu_count()} CPUs",
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def write_summary(path: str, comparison: dict, command: str | None = None) -> dict:
    """Writes ``summary.json``: the matched-rate comparison and where it came from."""
    summary = _jsonable({**comparison, "provenance": provenance(command)})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, allow_nan=False)
    return summary


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _quality_label(q) -> str:
    """A quality index as is; a variable-rate model's rate parameter to 3 significant digits."""
    return f"{q:.3g}" if isinstance(q, float) else str(q)


def summary_table(curves: dict[str, dict], reference: dict | None = None) -> str:
    """Plain-text table of every RD point, with BD-rate against ``reference`` when given."""
    lines = [f"{'name':<16}{'q':>5}{'bpp':>9}{'est.bpp':>9}{'PSNR':>8}{'MS-SSIM':>9}{'enc s':>8}{'dec s':>8}"]
    for name, curve in curves.items():
        r = curve["results"]
        for i in range(len(r["bpp"])):

            def cell(key, fmt, width):
                v = r.get(key, [None] * len(r["bpp"]))[i]
                return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"

            lines.append(
                f"{name:<16}{_quality_label(r['quality'][i]):>5}{cell('bpp', '.4f', 9)}{cell('bpp_estimated', '.4f', 9)}"
                f"{cell('psnr-rgb', '.2f', 8)}{cell('ms-ssim-rgb', '.4f', 9)}"
                f"{cell('encoding_time', '.3f', 8)}{cell('decoding_time', '.3f', 8)}"
            )
        if reference is not None:
            try:
                value = bdrate.bd_rate_curves(reference, curve)
                lines.append(f"{'':<16}BD-rate vs {reference['name']} (published anchor): {value:+.2f} %")
            except bdrate.RDCurveError as e:
                lines.append(f"{'':<16}BD-rate vs {reference['name']}: n/a ({e})")
    return "\n".join(lines)


#: Rate points of a variable-rate model's curve when `--qualities` is not given.
VR_EVAL_POINTS = 8


def _load_model_codecs(args) -> list:
    if not args.models and not args.weights:
        return []
    from jaxlic import zoo

    def rate_points(codec) -> list:
        """A variable-rate model (Cui et al. 2021 gain units) at `--qualities` (rate parameters)
        or 8 points evenly over its range: a whole curve from one model."""
        lo, hi = codec.rate_range
        qs = args.qualities if args.qualities is not None else np.linspace(lo, hi, VR_EVAL_POINTS)
        return [codec.at_rate(round(float(q), 6)) for q in qs]

    codecs_ = []
    for name in args.models:
        if getattr(zoo, "is_variable_rate", lambda n: False)(name):
            codecs_ += rate_points(zoo.load(name=name))
            continue
        qualities = args.qualities
        if qualities is None:
            available = getattr(zoo, "available", lambda: {})()
            qualities = available.get(name)
            if not qualities:
                raise JaxlicError(f"no shipped qualities known for model {name!r}; pass --qualities")
        for q in qualities:
            if not float(q).is_integer():
                raise JaxlicError(f"{name} is a fixed-rate model: its qualities are integers, not {q}")
            codecs_.append(zoo.load(name=name, quality=int(q)))
    for path in args.weights:
        codec = zoo.load(weights=path)
        codecs_ += rate_points(codec) if getattr(codec, "variable_rate", False) else [codec]
    if getattr(args, "refine", 0):
        method = getattr(args, "refine_method", "sga")
        codecs_ += [RefinedCodec(c, args.refine, method) for c in codecs_]
    return codecs_


def _codec_sweeps(args, status: dict) -> dict[str, list]:
    unknown = [c for c in args.codecs if c not in classical.CODECS]
    if unknown:
        raise JaxlicError(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(classical.CODECS)}")
    sweeps = {}
    for name in args.codecs:
        if status[name].startswith("unavailable"):
            print(f"note: skipping {name}: {status[name]}")
            continue
        sweeps[name] = args.codec_qualities or classical.DEFAULT_QUALITIES[name]
    return sweeps


def _reused_rows(paths, images: list[str]) -> list[dict]:
    """Rows of earlier ``per_image_*.csv`` files, for the images evaluated now.

    Raises:
        JaxlicError: a curve in those files lacks one of the images.
    """
    if not paths:
        return []
    rows = matched.read_rows(paths)
    for r in rows:
        r.setdefault("kind", "codec")
        r["quality"] = int(r["quality"]) if float(r["quality"]).is_integer() else r["quality"]
    wanted = {os.path.basename(p) for p in images}
    rows = [r for r in rows if r["image"] in wanted]
    for name in sorted({r["name"] for r in rows}):
        missing = wanted - {r["image"] for r in rows if r["name"] == name}
        if missing:
            raise JaxlicError(f"--reuse: {name} has no results for {', '.join(sorted(missing))}")
    return rows


def main_eval(args) -> int:
    """``jaxlic eval`` with parsed arguments (see ``jaxlic/cli.py``); returns the exit status."""
    images = list_images(args.images, args.max_images)
    status = classical.codec_status()
    sweeps = _codec_sweeps(args, status)
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.force:
        raise JaxlicError(f"output folder is not empty: {args.out} (use --force to overwrite)")
    earlier = _reused_rows(getattr(args, "reuse", None), images)
    sweeps = {k: v for k, v in sweeps.items() if k not in {r["name"] for r in earlier}}
    model_codecs = _load_model_codecs(args)
    clash = {c.name for c in model_codecs} & {r["name"] for r in earlier if r["kind"] == "model"}
    if clash:
        raise JaxlicError(
            f"--reuse already holds results of {', '.join(sorted(clash))}: evaluate it or reuse it"
        )
    if not model_codecs and not sweeps and not earlier:
        raise JaxlicError("nothing to evaluate: give --models, --weights or --codecs")
    dataset = os.path.basename(os.path.normpath(args.images))
    report = None
    if getattr(args, "report", None):
        if not model_codecs:
            raise JaxlicError("--report shows models against codecs: give --models or --weights")
        from jaxlic.evaluation.report import Report

        report = Report(args.report, target_bpp=getattr(args, "report_bpp", 0.15))
    rows, notes = evaluate(images, model_codecs, sweeps, progress=True, keep=report.add if report else None)
    rows += earlier
    for note in notes:
        print(f"note: {note}")
    curves = write_results(rows, args.out, dataset, args.anchors, backends=status)
    reference = None
    if args.anchors and os.path.exists(os.path.join(args.anchors, "vtm.json")):
        reference = bdrate.load_rd_json(os.path.join(args.anchors, "vtm.json"))
    print(summary_table(curves, reference))
    model_rows = [r for r in rows if r["kind"] == "model"]
    codec_rows = [r for r in rows if r["kind"] == "codec"]
    table = None
    if model_rows and codec_rows:
        comparison = matched.compare(model_rows, codec_rows)
        table = matched.table(comparison)
        print()
        print(table)
        write_summary(os.path.join(args.out, "summary.json"), comparison)
    print(f"results written to {args.out}/ (JSON per curve, per_image_*.csv, summary.json, rd_*.png)")
    if report is not None:
        reused = sorted({r["name"] for r in earlier})
        page = report.write(
            plots=[os.path.join(args.out, f) for f in ("rd_psnr.png", "rd_ms-ssim.png")],
            title=f"jaxlic eval: {dataset}",
            table=table,
            notes=[f"Not shown (reused from earlier results, no decodes): {', '.join(reused)}."]
            if reused
            else [],
        )
        print(f"visual report written to {page}")
    return 0


def main_compare(args) -> int:
    """``jaxlic compare``: per-image matched-rate table (and ``--json``) from per-image CSVs."""
    rows = matched.read_rows(args.results)
    model_rows = [r for r in rows if r.get("kind") == "model"]
    codec_rows = [r for r in rows if r.get("kind") == "codec"]
    if not model_rows or not codec_rows:
        raise JaxlicError("compare needs per-image rows of at least one model and one codec")
    if args.models:
        model_rows = [r for r in model_rows if r["name"] in args.models]
    if args.codecs:
        codec_rows = [r for r in codec_rows if r["name"] in args.codecs]
    comparison = matched.compare(model_rows, codec_rows)
    print(matched.table(comparison))
    if args.json:
        write_summary(args.json, comparison)
        print(f"written to {args.json}")
    return 0
