"""Cold start of the command line: wall time of new `jaxlic compress` / `decompress` processes.

Every CLI call is a fresh Python process that imports JAX, loads the weights and compiles the
networks for the padded image size. `jaxlic.compile_cache` keeps XLA's executables on disk, so a
second process on an image of the same size skips compilation. This benchmark measures, with the
shipped model (ckbd-full q2) and a fresh, empty cache folder per repeat:

  * first:   compress + decompress of photo A with the empty cache (compiles, fills the cache);
  * second:  the same again (cache hits);
  * other:   compress + decompress of photo B, of another size, with the cache of A;
  * nocache: compress + decompress of A with ``JAXLIC_NO_COMPILE_CACHE=1`` (today's behaviour).

Repeats are interleaved (first, second, other, nocache, then again), and the median of each is
reported with the ratios second/first and other/first. Photo A is Kodak kodim23 (768x512)
upscaled 2x (Lanczos) to 1536x1024 and centre-cropped to 1152x864 (0.995 megapixel); photo B is
kodim05 upscaled the same way and centre-cropped to 1024x1024 (another padded size).

``--breakdown`` adds one in-process profile of a compress with a warm cache and without any:
import time (jax, flax, constriction, jaxlic.zoo), weights loading, first and second `compress`
call (the difference is tracing + compilation or cache reading).

Run (about 3 minutes on 2 cores)::

    python -m eval.cold_start [--repeats 3] [--breakdown] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def make_photo(name: str, size: tuple[int, int], kodak: pathlib.Path = KODAK) -> np.ndarray:
    """Kodak `name` upscaled 2x (Lanczos) and centre-cropped to `size` (H, W)."""
    from PIL import Image

    im = Image.open(kodak / f"{name}.png").convert("RGB")
    im = im.resize((2 * im.width, 2 * im.height), Image.Resampling.LANCZOS)
    a = np.asarray(im)
    h, w = size
    i0, j0 = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    if i0 < 0 or j0 < 0:
        raise ValueError(f"{name} upscaled is {a.shape[:2]}, smaller than {size}")
    return np.ascontiguousarray(a[i0 : i0 + h, j0 : j0 + w])


def _run_cli(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "jaxlic.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"jaxlic {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt


def _pair(png: pathlib.Path, work: pathlib.Path, tag: str, env: dict) -> tuple[float, float]:
    stream, out = work / f"{tag}.jlic", work / f"{tag}.png"
    t_c = _run_cli(["compress", str(png), str(stream), "--force"], env)
    t_d = _run_cli(["decompress", str(stream), str(out), "--force"], env)
    return t_c, t_d


_PROFILE = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, flax, constriction
t1 = time.perf_counter()
from jaxlic import compile_cache, zoo
from jaxlic.image_io import read_image
t2 = time.perf_counter()
folder = compile_cache.enable()
img = read_image(sys.argv[1])[0]
t3 = time.perf_counter()
codec = zoo.load("ckbd-full")
t4 = time.perf_counter()
codec.compress(img)
t5 = time.perf_counter()
codec.compress(img)
t6 = time.perf_counter()
print(json.dumps({"cache": str(folder) if folder else None, "import_jax_flax_constriction_s": t1 - t0,
                  "import_jaxlic_s": t2 - t1, "load_weights_s": t4 - t3, "compress_first_s": t5 - t4,
                  "compress_second_s": t6 - t5, "network_s": codec.last_timings["network_s"],
                  "coding_s": codec.last_timings["coding_s"]}))
"""


def _profile(png: pathlib.Path, env: dict) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _PROFILE, str(png)], env=env, capture_output=True, text=True, timeout=600
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--breakdown", action="store_true", help="also profile one process in detail")
    ap.add_argument("--json", help="write the measurements to this file")
    args = ap.parse_args(argv)
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="jaxlic-cold-") as tmp:
        work = pathlib.Path(tmp)
        photos = {"A": ("kodim23", (864, 1152)), "B": ("kodim05", (1024, 1024))}
        pngs = {}
        for key, (name, size) in photos.items():
            pngs[key] = work / f"{key}.png"
            Image.fromarray(make_photo(name, size)).save(pngs[key])
        base = {k: v for k, v in os.environ.items() if k not in ("JAXLIC_NO_COMPILE_CACHE",)}
        rows = {k: [] for k in ("first", "second", "other", "nocache")}
        for r in range(args.repeats):
            env = dict(base, JAX_COMPILATION_CACHE_DIR=str(work / f"cache{r}"))
            rows["first"].append(_pair(pngs["A"], work, "a", env))
            rows["second"].append(_pair(pngs["A"], work, "a", env))
            rows["other"].append(_pair(pngs["B"], work, "b", env))
            rows["nocache"].append(_pair(pngs["A"], work, "a", dict(base, JAXLIC_NO_COMPILE_CACHE="1")))
            print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]}" for k, v in rows.items()))
            sizes = [f.stat().st_size for f in (work / f"cache{r}").rglob("*") if f.is_file()]
        result = {
            "photos": {k: f"{n} upscaled 2x, centre crop {s[1]}x{s[0]}" for k, (n, s) in photos.items()},
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "runs": rows,
            "cache_entries": len(sizes),
            "cache_bytes": sum(sizes),
        }
        med = {}
        print(f"\n{'':10s} {'compress s':>11s} {'decompress s':>13s} {'total s':>8s}")
        for k, v in rows.items():
            c = statistics.median(x[0] for x in v)
            d = statistics.median(x[1] for x in v)
            t = statistics.median(x[0] + x[1] for x in v)
            med[k] = {"compress_s": c, "decompress_s": d, "total_s": t}
            print(f"{k:10s} {c:11.2f} {d:13.2f} {t:8.2f}")
        result["median"] = med
        for k in ("second", "other", "nocache"):
            ratios = {
                part: med[k][f"{part}_s"] / med["first"][f"{part}_s"]
                for part in ("compress", "decompress", "total")
            }
            result[f"ratio_{k}_over_first"] = ratios
            print(f"{k}/first: " + ", ".join(f"{p} {x:.2f}" for p, x in ratios.items()))
        print(f"cache: {len(sizes)} entries, {sum(sizes) / 2**20:.1f} MiB after one repeat")
        if args.breakdown:
            env = dict(base, JAX_COMPILATION_CACHE_DIR=str(work / "cache0"))
            result["breakdown_warm_cache"] = _profile(pngs["A"], env)
            result["breakdown_no_cache"] = _profile(pngs["A"], dict(base, JAXLIC_NO_COMPILE_CACHE="1"))
            for k in ("breakdown_warm_cache", "breakdown_no_cache"):
                print(
                    k,
                    json.dumps({a: round(b, 3) if isinstance(b, float) else b for a, b in result[k].items()}),
                )
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
