"""Ships a finished training run's weights as the zoo's file of their name (the default, or any model).

  python tools/ship_default.py runs/NAME/export/ckbd-full-vr-q0.msgpack \\
      --check ../shared/data/kodak/kodim05.png ../shared/data/kodak/kodim23.png \\
      --note "the continuation of the ablation's ckbd-full to 20k steps"

How the default has been shipped (jaxlic/pretrained/README.md, results/exact/README.md), as one
command that trains nothing:

1. the exact (integer entropy path) model: a float export is calibrated on training photos
   (`tools/exact_convert.py calibrate`, or `--exact BITS` to reuse known bits) and converted as
   it is (`ptq`); an export that is already exact (a quantisation-aware fine-tune,
   `--config.exact=...`) is taken as it is;
2. its compact copy (`tools/compact_weights.py`: float16 for the large arrays), coded against the
   uncompacted file on the `--check` images (`compact_check` in its JSON);
3. the file shipped now under that name, `jaxlic/pretrained/<model>-q<quality>.msgpack`, is kept
   in `jaxlic/pretrained/archive/<model>-q<quality>-<fingerprint>.msgpack` (with its JSON and an
   `archived` note), so that every stream written with it still decodes (`jaxlic.zoo.for_stream`);
4. the new file and its JSON (with `weights_id`, its fingerprint) take its place.

Each step writes whole files; a repeated command after a crash finishes the job, and a command
whose weights are already shipped is refused. Measuring the new file (its Kodak curve, the table
of jaxlic/pretrained/README.md, `results/kodak/`) is left to `jaxlic eval`, whose command is
printed at the end; the ablation campaign (results/ablation/campaign.sh) no longer ships anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "jaxlic" / "pretrained"
TRAIN_PHOTOS = ROOT.parent / "shared" / "data" / "train"


def _tool(name: str):
    """tools/NAME.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_suffix(".json")


def _copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copies a file whole: to a temporary name, then renamed."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _write_json(path: pathlib.Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    tmp.replace(path)


def archive_path(pretrained: pathlib.Path, name: str, fingerprint: int) -> pathlib.Path:
    """Where a replaced file of `name` is kept: `archive/<name>-<fingerprint as 16 hex digits>.msgpack`."""
    return pretrained / "archive" / f"{name}-{fingerprint:016x}.msgpack"


def ship(
    export: pathlib.Path,
    pretrained: pathlib.Path = PRETRAINED,
    exact: tuple[int, ...] | None = None,
    check: list[str] | None = None,
    note: str = "",
    work: pathlib.Path | None = None,
    data: pathlib.Path = TRAIN_PHOTOS,
) -> dict:
    """Converts, compacts and ships `export`; returns {"shipped", "archived", "weights_id", "exact"}."""
    from jaxlic import weights

    params, meta = weights.load(export)
    name = f"{meta['model']}-q{meta['quality']}"
    shipped = pretrained / f"{name}.msgpack"
    with tempfile.TemporaryDirectory(prefix="jaxlic-ship-") as tmp:
        work = pathlib.Path(work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        # 1. the exact model
        if meta["config"].get("exact"):
            converted, bits = export, tuple(meta["config"]["exact"])
        else:
            convert = _tool("exact_convert")
            bits = tuple(exact) if exact else convert.calibrate(str(export), data, 16, 256, 0)
            converted = work / f"{name}-exact.msgpack"
            convert.ptq(str(export), str(converted), bits)
            _write_json(_sidecar(converted), weights.load(converted)[1])  # compact_weights copies it
        # 2. its compact copy, checked
        compact = work / f"{name}.msgpack"
        _tool("compact_weights").main([str(converted), str(compact), *(["--check", *check] if check else [])])
        new_params, new_meta = weights.load(compact)
        new_id = weights.fingerprint(new_params)
        info = json.loads(_sidecar(compact).read_text()) if _sidecar(compact).is_file() else dict(new_meta)
        # 3. the file shipped now goes to the archive (a copy first: nothing is lost on a crash)
        archived = None
        if shipped.is_file():
            old_params, _ = weights.load(shipped)
            old_id = weights.fingerprint(old_params)
            if old_id == new_id:
                raise SystemExit(f"error: {shipped} already holds these weights ({new_id:016x})")
            archived = archive_path(pretrained, name, old_id)
            archived.parent.mkdir(parents=True, exist_ok=True)
            if not archived.is_file():
                _copy(shipped, archived)
            old_info = json.loads(_sidecar(shipped).read_text()) if _sidecar(shipped).is_file() else {}
            why = f"{time.strftime('%Y-%m-%d')}: replaced by {new_id:016x}" + (f" ({note})" if note else "")
            _write_json(_sidecar(archived), {**old_info, "weights_id": f"{old_id:016x}", "archived": why})
        # 4. the new file takes its place
        shipped.parent.mkdir(parents=True, exist_ok=True)
        _copy(compact, shipped)
        _write_json(_sidecar(shipped), {**info, "weights_id": f"{new_id:016x}", "shipped_from": str(export)})
    return {"shipped": shipped, "archived": archived, "weights_id": f"{new_id:016x}", "exact": list(bits)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "export", type=pathlib.Path, help="the run's exported weights (export/<model>-q<q>.msgpack)"
    )
    p.add_argument("--exact", help="fractional bits of the exact path (default: calibrate on --data)")
    p.add_argument("--data", type=pathlib.Path, default=TRAIN_PHOTOS, help="training photos for calibrate")
    p.add_argument("--check", nargs="+", metavar="IMAGE", help="code these with the compact and full files")
    p.add_argument("--note", default="", help="why the weights change (kept in the archived file's JSON)")
    p.add_argument("--pretrained", type=pathlib.Path, default=PRETRAINED, help=argparse.SUPPRESS)
    p.add_argument("--work", type=pathlib.Path, help="keep the intermediate files here")
    args = p.parse_args(argv)
    from jaxlic.errors import JaxlicError

    try:
        exact = tuple(int(b) for b in args.exact.split(",")) if args.exact else None
        r = ship(args.export, args.pretrained, exact, args.check, args.note, args.work, args.data)
    except (JaxlicError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    moved = f"; the previous file is kept as {r['archived']}" if r["archived"] else ""
    print(f"shipped {r['shipped']} ({r['weights_id']}, exact {','.join(map(str, r['exact']))}){moved}")
    print(
        "next: its Kodak curve and the tables (jaxlic/pretrained/README.md, results/kodak/):\n"
        f"  jaxlic eval ../shared/data/kodak --weights {r['shipped']} --reuse results/kodak/per_image_codecs.csv "
        "--out runs/ship/kodak  (a variable-rate model: --qualities as in jaxlic/pretrained/README.md)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
