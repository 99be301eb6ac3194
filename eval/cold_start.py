"""Start-up of the command line: new `jaxlic compress` / `decompress` processes against warm work.

Every CLI call is a fresh Python process that imports JAX, loads the weights and gets its
networks for the padded image size: traced and compiled, read from JAX's persistent cache
(`jaxlic.compile_cache`, which still traces), or loaded whole from `jaxlic.warm_start`'s stored
executables. This benchmark times compress + decompress of photo A (two processes) with the
default model:

  * first:    with an empty cache folder (compiles, fills the cache);
  * second:   again, with the cache that `first` filled (the everyday case);
  * other:    photo B, another padded size, with the cache of A (compiles B's shapes);
  * jaxcache: like second, with `JAXLIC_NO_WARM_START=1`: JAX's cache only (before warm_start),
              in a folder of its own that an untimed pair filled;
  * nocache:  with `JAXLIC_NO_COMPILE_CACHE=1`: no cache at all;
  * server:   like second, handed to a resident server (`jaxlic.server`, ``JAXLIC_SERVER=1``)
              that an untimed pair started and warmed; the CPU time is the two client
              processes' plus what the server spent on the pair;
  * warm:     compress + decompress of A inside one process that has already coded it once
              (the median of 3): what a new process should come close to.

Every process runs a copy of the checkout's package (``--live``: the checkout itself). Repeats
are interleaved (all rows, then again); each row's median is reported, and the ratios to `warm`
are the medians of the per-repeat ratios (side by side: a change of the machine's load falls on
both); so are the ratios of CPU time (user + system, all threads), steadier than wall time on a
shared machine. Target: second / warm <= 1.5 (wall time). `second` runs with `--timings`, so the
JSON holds where each process's time went (imports, weights, compile, executables loaded, read,
network, coding, write). Photo A is Kodak kodim23 (768x512) upscaled 2x (Lanczos) and
centre-cropped to 1152x864 (0.995 megapixel); photo B is kodim05 upscaled the same way and
cropped to 1024x1024.

Run (about 5 minutes per repeat on 2 shared cores)::

    python -m eval.cold_start [--repeats 3] [--rows second,jaxcache,warm] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from eval import harness

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
ROWS = ("first", "second", "other", "jaxcache", "nocache", "server", "warm")


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


def _run_cli(args: list[str], env: dict) -> tuple[float, str, float]:
    from eval.cli_batch import run_cli, timings_line

    seconds, _, err, cpu = run_cli(args, env)
    return seconds, timings_line(err) or "", cpu


def _pair(png: pathlib.Path, work: pathlib.Path, tag: str, env: dict) -> dict:
    stream, out = work / f"{tag}.jlic", work / f"{tag}.png"
    t_c, why_c, cpu_c = _run_cli(["compress", str(png), str(stream), "--force", "--timings"], env)
    t_d, why_d, cpu_d = _run_cli(["decompress", str(stream), str(out), "--force", "--timings"], env)
    return {
        "compress_s": t_c,
        "decompress_s": t_d,
        "total_s": t_c + t_d,
        "cpu_s": cpu_c + cpu_d,
        "timings": [why_c, why_d],
    }


def _server_about(env: dict) -> dict:
    """`jaxlic server status --json` of the server these processes use."""
    from eval.cli_batch import jaxlic_command

    r = subprocess.run(
        [*jaxlic_command(), "server", "status", "--json"], env=env, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"no server: {r.stdout.strip()} {r.stderr.strip()}")
    return json.loads(r.stdout)


def _served_pair(png: pathlib.Path, work: pathlib.Path, env: dict, folder: pathlib.Path) -> dict:
    """`second` through a resident server that an untimed pair started (then it is stopped)."""
    from eval.cli_batch import jaxlic_command

    folder.mkdir(mode=0o700)
    env.update(JAXLIC_SERVER="1", JAXLIC_SERVER_DIR=str(folder), JAXLIC_SERVER_IDLE="600")
    _pair(png, work, "s", env)  # starts the server, which loads and warms the codec
    before = _server_about(env)
    row = _pair(png, work, "s", env)
    after = _server_about(env)
    subprocess.run([*jaxlic_command(), "server", "stop"], env=env, capture_output=True)
    row["client_cpu_s"] = row["cpu_s"]
    row["cpu_s"] += after["cpu_s"] - before["cpu_s"]
    row["server_rss_mb"] = after["rss_mb"]
    return row


_WARM = (
    harness.CHILD_IMPORT
    + r"""
import json
from jaxlic import compile_cache, zoo
from jaxlic.image_io import read_image
compile_cache.enable()
img = read_image(sys.argv[1])[0]
codec = zoo.load()
codec.decompress(codec.compress(img))  # the first round compiles or loads: not timed
c, d, cpu = [], [], []
for _ in range(int(sys.argv[2])):
    with harness.Timer() as t:
        data, compress_s = harness.timed(codec.compress, img)
        _, decompress_s = harness.timed(codec.decompress, data)
    c.append(compress_s); d.append(decompress_s); cpu.append(t.cpu_seconds)
print(json.dumps({"compress_s": harness.median(c), "decompress_s": harness.median(d),
                  "total_s": harness.median(a + b for a, b in zip(c, d)), "cpu_s": harness.median(cpu),
                  "runs": [c, d, cpu]}))
"""
)


def _warm(png: pathlib.Path, env: dict, rounds: int = 3) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _WARM, str(png), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=env.get("JAXLIC_BENCH_CWD"),
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.cold_start", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"rows to run, of {','.join(ROWS)} (default all)")
    ap.add_argument("--live", action="store_true", help="run the checkout's code, not a copy of it")
    ap.add_argument("--json", help="write the measurements to this file")
    args = ap.parse_args(argv)
    run = harness.Run("eval.cold_start", argv)
    from PIL import Image

    wanted = [r for r in ROWS if r in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="jaxlic-cold-") as tmp:
        work = pathlib.Path(tmp)
        photos = {"A": ("kodim23", (864, 1152)), "B": ("kodim05", (1024, 1024))}
        pngs = {}
        for key, (name, size) in photos.items():
            pngs[key] = work / f"{key}.png"
            Image.fromarray(make_photo(name, size)).save(pngs[key])
        from eval.cli_batch import snapshot

        base = dict(snapshot(work, args.live), JAXLIC_BENCH_CWD=str(work), JAXLIC_SERVER="0")
        rows: dict[str, list] = {k: [] for k in wanted}
        sizes: list[int] = []
        for r in range(args.repeats):
            env = dict(base, JAX_COMPILATION_CACHE_DIR=str(work / f"cache{r}"))
            if "first" in wanted or "second" in wanted or "warm" in wanted:
                first = _pair(pngs["A"], work, "a", env)  # fills the cache for the rows below
                if "first" in wanted:
                    rows["first"].append(first)
            for row in wanted:
                if row == "second":
                    rows[row].append(_pair(pngs["A"], work, "a", env))
                elif row == "other":
                    rows[row].append(_pair(pngs["B"], work, "b", env))
                elif row == "jaxcache":
                    # Its own folder, filled by an untimed call pair in the same mode: warm_start's
                    # compiles bypass JAX's cache, so the folder of `first` holds none of them.
                    jax_env = dict(
                        base, JAX_COMPILATION_CACHE_DIR=str(work / f"jaxcache{r}"), JAXLIC_NO_WARM_START="1"
                    )
                    _pair(pngs["A"], work, "a", jax_env)
                    rows[row].append(_pair(pngs["A"], work, "a", jax_env))
                elif row == "nocache":
                    rows[row].append(_pair(pngs["A"], work, "a", dict(base, JAXLIC_NO_COMPILE_CACHE="1")))
                elif row == "server":
                    rows[row].append(_served_pair(pngs["A"], work, dict(env), work / f"server{r}"))
                elif row == "warm":
                    rows[row].append(_warm(pngs["A"], env))
            print(
                f"repeat {r + 1}/{args.repeats}: "
                + ", ".join(f"{k} {v[-1]['total_s']:.2f} s" for k, v in rows.items() if v)
            )
            if "second" in rows:
                for line in rows["second"][-1]["timings"]:
                    print(f"  second: {line}")
            sizes = [f.stat().st_size for f in (work / f"cache{r}").rglob("*") if f.is_file()]
    result = {
        "photos": {k: f"{n} upscaled 2x, centre crop {s[1]}x{s[0]}" for k, (n, s) in photos.items()},
        "runs": rows,
        "cache_entries": len(sizes),
        "cache_bytes": sum(sizes),
        "loadavg_at_start": run.loadavg_at_start,
        "provenance": run.provenance(),
    }
    med = {}
    print(
        f"\nmachine: {result['provenance']['machine']}, load average at start {run.loadavg_at_start[0]:.1f}"
    )
    print(f"{'':10s} {'compress s':>11s} {'decompress s':>13s} {'total s':>8s} {'CPU s':>8s}")
    for k, v in rows.items():
        med[k] = harness.medians(v, ("compress_s", "decompress_s", "total_s", "cpu_s"))
        print(
            f"{k:10s} {med[k]['compress_s']:11.2f} {med[k]['decompress_s']:13.2f} {med[k]['total_s']:8.2f} "
            f"{med[k]['cpu_s']:8.2f}"
        )
    result["median"] = med
    if "warm" in rows:
        for k in rows:
            if k == "warm":
                continue
            ratio = harness.median_ratio(
                [a["total_s"] for a in rows[k]], [b["total_s"] for b in rows["warm"]]
            )
            cpu = harness.median_ratio([a["cpu_s"] for a in rows[k]], [b["cpu_s"] for b in rows["warm"]])
            result[f"ratio_{k}_over_warm"] = ratio
            result[f"cpu_ratio_{k}_over_warm"] = cpu
            print(
                f"{k}/warm: {ratio:.2f}, CPU time {cpu:.2f}" + ("  (target <= 1.5)" if k == "second" else "")
            )
    print(f"cache: {len(sizes)} entries, {sum(sizes) / 2**20:.1f} MiB after one repeat")
    if args.json:
        harness.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
