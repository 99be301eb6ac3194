"""Rate-distortion evaluation on a folder of images: the engine behind ``jaxlic eval``.

For every image, every model/quality (through ``jaxlic.zoo``) and every classical codec/quality
(``eval/codecs.py``) it measures the real rate from the size of the actual bitstream (container
header included), the model's own rate estimate, PSNR over RGB, 5-scale MS-SSIM and encode/decode
wall-clock times. It writes into the output folder:

* ``<name>.json`` per model and codec in CompressAI's format (means over images per quality,
  sorted by bpp; models also get ``bpp_estimated`` and ``bpp_real_over_estimated``),
* ``per_image.csv`` with one row per image and setting,
* ``rd_psnr.png`` and ``rd_ms-ssim.png`` (optionally with published anchors),

and prints a summary table. The models are `jaxlic.rdcodec.RDCodec` objects, one per RD point
(`load_points`): a fixed-rate model at each quality index, a variable-rate one at each rate
parameter (`RateView`), each also refined with ``--refine`` (`RefinedCodec`). Example::

    jaxlic eval data/kodak --models ckbd,ckbd-full --codecs jpeg,webp,avif \
        --anchors ../shared/anchors/kodak-published --out results/kodak

``jaxlic compare`` (:func:`main_compare`) compares per image at matched rate: models against
codecs, or a model against a baseline model (``--against`` per-image files, or images coded with
both models first, ``--against-model`` / ``--against-weights``; `jaxlic.evaluation.matched.versus`).
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
from jaxlic.rdcodec import RateView, RDCodec, RefinedCodec, is_variable_rate, setting

__all__ = ["RefinedCodec", "evaluate", "load_points", "main_compare", "main_eval", "measure_model"]

CSV_FIELDS = matched.FIELDS


def measure_model(codec: RDCodec, img: np.ndarray, keep_recon: bool = False) -> dict:
    """Compresses and decompresses ``img`` with a model codec; rate from the real stream.

    Args:
        codec: the codec at one RD point (`jaxlic.rdcodec.RDCodec`, e.g. ``jaxlic.zoo.load``'s
            or a `RateView`); it codes at its default rate.
        img: ``uint8 [H, W, 3]``.
        keep_recon: also return the decoded image (``recon``), for the visual report.

    Returns:
        dict with ``bpp``, ``bpp_estimated`` (the model's estimate), ``psnr``, ``ms_ssim``,
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
    result = {
        "bpp": 8.0 * len(data) / (h * w),
        "bpp_estimated": float(codec.estimate_bpp(img)),
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


def _warm_up(codec: RDCodec, img, seen: set) -> None:
    """Runs a model once per image shape before timing, so timings exclude JIT compilation."""
    key = (id(codec), img.shape)
    if key not in seen:
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
        model_codecs: model codecs, each one RD point (`load_points`); a row's ``quality`` is
            the codec's quality index, or its rate parameter if it is variable-rate
            (`jaxlic.rdcodec.setting`).
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
                point = setting(codec)
                bar.set_description(f"{base['image']} {codec.name} q{_quality_label(point)}")
                _warm_up(codec, img, seen)
                m = measure_model(codec, img, keep_recon=keep is not None)
                recon = m.pop("recon", None)
                rows.append({**base, "kind": "model", "name": codec.name, "quality": point, **m})
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
    """Where a result came from (`jaxlic.provenance`), with ``jaxlic ...`` as the default command."""
    import sys

    import jax  # noqa: F401  (described in the record)

    from jaxlic import provenance as prov

    return prov.provenance(command if command is not None else " ".join(["jaxlic", *sys.argv[1:]]))


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


def _registered_variable_rate(name: str) -> bool:
    from jaxlic.models import registry

    try:
        return registry.is_variable_rate(name)
    except JaxlicError:
        return False  # unknown: jaxlic.zoo.load says so


def load_points(
    models=(), weights=(), qualities=None, rates=None, refine: int = 0, method: str = "sga"
) -> list:
    """The RD points of models to evaluate: one codec per point.

    Args:
        models: model names: a fixed-rate one at each of `qualities` (default: its shipped ones),
            a variable-rate one at each of `rates`.
        weights: weights files: a fixed-rate one is one point, a variable-rate one a curve.
        qualities: quality indices of the fixed-rate models; non-integers are rate parameters
            (the deprecated alias of `rates`) of the variable-rate ones.
        rates: rate parameters of the variable-rate models (default: `VR_EVAL_POINTS` evenly
            over each one's range).
        refine: > 0 adds each point refined by this many steps (`RefinedCodec`, by `method`).

    Raises:
        JaxlicError: unknown models, missing weights, or settings a model cannot take.
    """
    from jaxlic import zoo

    def curve(codec) -> list:
        """A variable-rate model (Cui et al. 2021 gain units) at its rates: one model, a curve."""
        chosen = rates
        if chosen is None and qualities is not None:
            print(f"note: --qualities of variable-rate model {codec.name} is deprecated: use --rates")
            chosen = qualities
        if chosen is None:
            chosen = np.linspace(*codec.rate_range, VR_EVAL_POINTS)
        return [RateView(codec, round(float(q), 6)) for q in chosen]

    def fixed(name: str, codec=None) -> list:
        if qualities is None and rates is not None:
            raise JaxlicError(
                f"{name} is a fixed-rate model: give it quality indices (--qualities), not rates"
            )
        if codec is not None:
            return [codec]
        chosen = qualities if qualities is not None else zoo.available().get(name)
        if not chosen:
            raise JaxlicError(f"no shipped qualities known for model {name!r}; pass --qualities")
        for q in chosen:
            if not float(q).is_integer():
                raise JaxlicError(f"{name} is a fixed-rate model: its qualities are integers, not {q}")
        return [zoo.load(name=name, quality=int(q)) for q in chosen]

    points = []
    for name in models:
        points += curve(zoo.load(name=name)) if _registered_variable_rate(name) else fixed(name)
    for path in weights:
        codec = zoo.load(weights=path)
        points += curve(codec) if is_variable_rate(codec) else fixed(codec.name, codec)
    if refine:
        points += [RefinedCodec(c, refine, method) for c in points]
    return points


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
    earlier = _reused_rows(args.reuse, images)
    sweeps = {k: v for k, v in sweeps.items() if k not in {r["name"] for r in earlier}}
    model_codecs = load_points(
        args.models, args.weights, args.qualities, args.rates, args.refine, args.refine_method
    )
    clash = {c.name for c in model_codecs} & {r["name"] for r in earlier if r["kind"] == "model"}
    if clash:
        raise JaxlicError(
            f"--reuse already holds results of {', '.join(sorted(clash))}: evaluate it or reuse it"
        )
    if not model_codecs and not sweeps and not earlier:
        raise JaxlicError("nothing to evaluate: give --models, --weights or --codecs")
    dataset = os.path.basename(os.path.normpath(args.images))
    report = None
    if args.report:
        if not model_codecs:
            raise JaxlicError("--report shows models against codecs: give --models or --weights")
        from jaxlic.evaluation.report import Report

        report = Report(args.report, target_bpp=args.report_bpp)
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
    """``jaxlic compare`` with parsed arguments (see ``jaxlic/cli.py``); returns the exit status.

    Three forms: per-image files' models against their codecs; a model's per-image file against
    a baseline model's (``--against``); images coded by a model and a baseline model first
    (``--against-model`` / ``--against-weights``). Prints the table, writes ``--json``.
    """
    live = args.against_model is not None or bool(args.against_weights)
    if not live and (args.model is not None or args.weights):
        raise JaxlicError(
            "--model/--weights code images: name the baseline with --against-model or --against-weights"
        )
    if live and args.against:
        raise JaxlicError(
            "--against reads per-image files; --against-model/--against-weights code images: give one"
        )
    if live:
        comparison = _versus_live(args)
    elif args.against:
        comparison = _versus_files(args)
    else:
        rows = matched.read_rows(args.inputs)
        model_rows = [r for r in rows if r.get("kind") == "model"]
        codec_rows = [r for r in rows if r.get("kind") == "codec"]
        if not model_rows or not codec_rows:
            raise JaxlicError(
                "compare needs per-image rows of at least one model and one codec "
                "(or a baseline model: --against FILE)"
            )
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


def _stem(path: str) -> str:
    """A per-image file's label: ``per_image_NAME.csv`` -> ``NAME``."""
    name = os.path.splitext(os.path.basename(path))[0]
    return name.removeprefix("per_image_") or name


def _relabel(rows: list[dict], name: str) -> list[dict]:
    return [{**r, "name": name} for r in rows]


def _distinct(test: str, base: str) -> tuple[str, str]:
    return (test, base) if test != base else (test, f"{base} (baseline)")


def _model_rows(paths, models=()) -> tuple[list[dict], str]:
    """The model rows of per-image files (all of one model) and their label.

    Raises:
        JaxlicError: no model rows, or rows of several models (choose one with ``--models``).
    """
    rows = [r for r in matched.read_rows(paths) if r.get("kind", "model") == "model"]
    if models:
        rows = [r for r in rows if r["name"] in models]
    names = sorted({r["name"] for r in rows})
    files = ", ".join(map(str, paths))
    if not names:
        raise JaxlicError(f"no model rows in {files}" + (f" for {', '.join(models)}" if models else ""))
    if len(names) > 1:
        raise JaxlicError(f"{files} hold several models ({', '.join(names)}): choose one with --models")
    return rows, names[0]


def _versus_files(args) -> dict:
    """``--against``: the model of the per-image files against the baseline model's."""
    test, test_name = _model_rows(args.inputs, args.models)
    base, base_name = _model_rows(args.against)
    if getattr(args, "same_points", False):
        base = matched.same_points(test, base)
    if test_name == base_name:  # e.g. two runs of one model: the files name them
        test_name, base_name = _distinct(_stem(args.inputs[0]), _stem(args.against[0]))
    return matched.versus(_relabel(test, test_name), _relabel(base, base_name), args.at_bpp)


def _versus_live(args) -> dict:
    """Images coded with the model under test and the baseline model, compared per image."""
    from jaxlic import batch
    from jaxlic.image_io import IMAGE_EXTENSIONS
    from jaxlic.models.registry import DEFAULT_MODEL

    inputs = batch.expand(args.inputs, IMAGE_EXTENSIONS)
    if inputs.bad:
        spec, message = inputs.bad[0]
        raise JaxlicError(f"{spec}: {message}")
    images = inputs.files[: args.max_images] if args.max_images else inputs.files
    sides = []
    for model, weights in ((args.model, args.weights), (args.against_model, args.against_weights)):
        if model is not None and weights:
            raise JaxlicError("give a model name or weights files for each side, not both")
        if model is None and not weights:
            model = DEFAULT_MODEL
        points = load_points([model] if model else [], weights, args.qualities, args.rates)
        if len(sides) == 1 and len(points) < 2:
            print(
                "note: the baseline has one point per image, so it has no curve to read at other rates: "
                "give it several --qualities or weights files, or a variable-rate model"
            )
        rows, _ = evaluate(images, points, {}, progress=True)
        label = model or (_stem(weights[0]) if len(weights) == 1 else points[0].name)
        sides.append((rows, label))
    (test, test_name), (base, base_name) = sides
    test_name, base_name = _distinct(test_name, base_name)
    return matched.versus(_relabel(test, test_name), _relabel(base, base_name), args.at_bpp)
