"""Batch mode of the command line: one call per direction against one call per file.

Compresses and decompresses the Kodak images (24 PNGs, 768x512 and 512x768) two ways, each in
new ``jaxlic`` processes, as a user's shell would run them:

  * single: ``jaxlic compress kodimNN.png kodimNN.jlic`` and ``jaxlic decompress kodimNN.jlic
    kodimNN.png``, one process per file and direction (48 calls);
  * batch:  ``jaxlic compress DIR --out-dir S`` and ``jaxlic decompress S --out-dir D`` (2 calls).

Both use the default model and one compile cache, warmed first by an untimed batch (a user's
second day, not the first call after installing), and a copy of the checkout's package (others
may edit the checkout meanwhile; ``--live`` runs it as it is). Rounds alternate which way goes first; the
ratio batch / single is the median of the per-round ratios (side by side: a change of the
machine's load falls on both); the same ratio of CPU time (user + system of the processes, all
threads) is printed beside it, steadier than wall time on a shared machine. Every round checks that the two ways wrote identical streams and
images. The batch calls also report where their time went (``--timings``).

Run (about 10 minutes per round on 2 shared cores)::

    python -m eval.cli_batch [--images N] [--rounds 3] [--json results/cli_batch.json]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from eval import harness

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def jaxlic_command() -> list[str]:
    """The ``jaxlic`` console script of this interpreter (what users run), else ``-m jaxlic.cli``."""
    script = pathlib.Path(sys.executable).with_name("jaxlic")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jaxlic.cli"]


def snapshot(work: pathlib.Path, live: bool = False) -> dict:
    """Environment for ``jaxlic`` processes that run a copy of this checkout's package.

    Others may edit the checkout while a benchmark runs; a copy keeps every process of the run on
    the same code (and ``jaxlic.warm_start``'s entries valid). The processes run in ``work``
    (not in the checkout, whose folder would come first on ``sys.path``), and may write bytecode
    (``PYTHONDONTWRITEBYTECODE`` is dropped), as an installed package's processes do.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAXLIC_NO_", "XDG_CACHE"))}
    # As an installed package: its modules' bytecode is written once, not compiled by every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not live:
        package = pathlib.Path(__file__).resolve().parents[1] / "jaxlic"
        shutil.copytree(package, work / "code" / "jaxlic", ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = os.pathsep.join([str(work / "code"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(args: list[str], env: dict) -> tuple[float, str, str, float]:
    """Wall seconds, stdout, stderr and CPU seconds (user + system, all threads) of one ``jaxlic``
    process; raises on a non-zero exit."""
    with harness.Timer(children=True) as t:
        r = subprocess.run(
            [*jaxlic_command(), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            cwd=env.get("JAXLIC_BENCH_CWD"),
        )
    if r.returncode != 0:
        raise RuntimeError(f"jaxlic {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return t.seconds, r.stdout, r.stderr, t.cpu_seconds


def timings_line(stderr: str) -> str | None:
    """The ``time: ...`` line that ``--timings`` prints."""
    return next((line for line in stderr.splitlines() if line.startswith("time: ")), None)


def _single(images: list[pathlib.Path], work: pathlib.Path, env: dict) -> dict:
    out = work / "single"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    compress = decompress = cpu = 0.0
    for img in images:
        stream, png = out / f"{img.name}.jlic", out / img.name
        t_c, _, _, cpu_c = run_cli(["compress", str(img), str(stream)], env)
        t_d, _, _, cpu_d = run_cli(["decompress", str(stream), str(png)], env)
        compress, decompress, cpu = compress + t_c, decompress + t_d, cpu + cpu_c + cpu_d
    return {
        "compress_s": compress,
        "decompress_s": decompress,
        "total_s": compress + decompress,
        "cpu_s": cpu,
    }


def _batch(folder: pathlib.Path, work: pathlib.Path, env: dict) -> dict:
    streams, pngs = work / "batch-jlic", work / "batch-png"
    for d in (streams, pngs):
        shutil.rmtree(d, ignore_errors=True)
    t_c, _, err_c, cpu_c = run_cli(["compress", str(folder), "--out-dir", str(streams), "--timings"], env)
    t_d, _, err_d, cpu_d = run_cli(["decompress", str(streams), "--out-dir", str(pngs), "--timings"], env)
    return {
        "compress_s": t_c,
        "decompress_s": t_d,
        "total_s": t_c + t_d,
        "cpu_s": cpu_c + cpu_d,
        "compress_timings": timings_line(err_c),
        "decompress_timings": timings_line(err_d),
    }


def _same_outputs(images: list[pathlib.Path], work: pathlib.Path) -> bool:
    for img in images:
        a = (work / "single" / f"{img.name}.jlic").read_bytes()
        b = (work / "batch-jlic" / f"{img.name}.jlic").read_bytes()
        if (
            a != b
            or (work / "single" / img.name).read_bytes() != (work / "batch-png" / img.name).read_bytes()
        ):
            return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.cli_batch", description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24, help="the first N Kodak images (default 24)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--kodak", default=str(KODAK), help="folder of the Kodak PNGs")
    ap.add_argument("--live", action="store_true", help="run the checkout's code, not a copy of it")
    ap.add_argument("--json", help="write the measurements to this file")
    args = ap.parse_args(argv)
    run = harness.Run("eval.cli_batch", argv)
    source = sorted(pathlib.Path(args.kodak).glob("*.png"))[: args.images]
    if not source:
        raise SystemExit(f"no PNGs in {args.kodak}")
    identical = []
    with tempfile.TemporaryDirectory(prefix="jaxlic-batch-") as tmp:
        work = pathlib.Path(tmp)
        folder = work / "images"
        folder.mkdir()
        images = []
        for p in source:
            shutil.copy(p, folder / p.name)
            images.append(folder / p.name)
        env = snapshot(work, args.live)
        env["JAX_COMPILATION_CACHE_DIR"] = str(work / "cache")
        env["JAXLIC_BENCH_CWD"] = str(work)
        warm = _batch(folder, work, env)
        print(f"warm-up batch (fills the cache): {warm['total_s']:.1f} s")

        def after_round(r, got):
            identical.append(_same_outputs(images, work))
            ratio = got["batch"]["total_s"] / got["single"]["total_s"]
            cpu = got["batch"]["cpu_s"] / got["single"]["cpu_s"]
            print(
                f"round {r + 1}/{args.rounds}: single {got['single']['total_s']:.1f} s, "
                f"batch {got['batch']['total_s']:.1f} s, ratio {ratio:.3f} (CPU time {cpu:.3f}), "
                f"identical outputs {identical[-1]}"
            )
            for k in ("compress_timings", "decompress_timings"):
                print(f"  batch {k.split('_')[0]}: {got['batch'][k]}")

        # rounds alternate which way goes first
        ways = {"single": lambda: _single(images, work, env), "batch": lambda: _batch(folder, work, env)}
        rows = harness.interleave(ways, args.rounds, after_round=after_round)
    keys = ("compress_s", "decompress_s", "total_s", "cpu_s")
    median = {way: harness.medians(v, keys) for way, v in rows.items()}
    ratios = harness.ratios([x["total_s"] for x in rows["batch"]], [x["total_s"] for x in rows["single"]])
    cpu_ratios = harness.ratios([x["cpu_s"] for x in rows["batch"]], [x["cpu_s"] for x in rows["single"]])
    result = {
        "what": f"{len(images)} Kodak images, compress + decompress: {2 * len(images)} single calls "
        "against one batch call per direction, warm compile cache",
        "commands": {
            "single": "jaxlic compress kodimNN.png kodimNN.jlic; jaxlic decompress kodimNN.jlic kodimNN.png",
            "batch": "jaxlic compress DIR --out-dir S --timings; jaxlic decompress S --out-dir D --timings",
        },
        "rounds": rows,
        "median": median,
        "ratio_batch_over_single_per_round": ratios,
        "ratio_batch_over_single_median": harness.median(ratios),
        "cpu_ratio_batch_over_single_per_round": cpu_ratios,
        "cpu_ratio_batch_over_single_median": harness.median(cpu_ratios),
        "target": 0.4,
        "identical_outputs": all(identical),
        "provenance": run.provenance(),
    }
    prov = result["provenance"]
    print(f"\nmachine: {prov['machine']}, load average at start {prov['loadavg_at_start'][0]:.1f}")
    print(f"{'':8s} {'compress s':>11s} {'decompress s':>13s} {'total s':>8s} {'CPU s':>8s}")
    for way, m in median.items():
        print(
            f"{way:8s} {m['compress_s']:11.1f} {m['decompress_s']:13.1f} {m['total_s']:8.1f} {m['cpu_s']:8.1f}"
        )
    print(
        f"batch / single: {result['ratio_batch_over_single_median']:.3f} (median of per-round ratios; target <= 0.4)"
    )
    if args.json:
        harness.write_json(args.json, result)
    return 0 if all(identical) else 1


if __name__ == "__main__":
    sys.exit(main())
