"""Decoding time of trained weights files, measured side by side in one run.

    python -m eval.decode_time --weights ckbd=results/ablation/weights/ckbd-s0.msgpack \\
        --weights ckbd-full=results/ablation/weights/ckbd-full-s0.msgpack [--image PNG] \\
        [--bpp 0.15] [--rounds 9] [--json results/ablation/decode_time.json]

Each file's codec makes one stream of the image (Kodak's kodim23 by default) at a matched rate
(a variable-rate model searches its rate parameter for ``--bpp`` by real range coding; a
fixed-rate model codes at its own rate), decodes it once to compile, then the streams are decoded
in ``--rounds`` interleaved rounds, each round in a rotated order, so that a change of the
machine's load falls on every file alike. Reported per file: the median decoding time with its
network / range-coding / synthesis split, and the median over rounds of its time divided by the
first file's time in the same round. Every decode is checked to give the same image as the first.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import harness
from jaxlic.errors import JaxlicError
from jaxlic.metrics import psnr

REPO = pathlib.Path(__file__).resolve().parents[1]
KODIM23 = REPO.parent / "shared" / "data" / "kodak" / "kodim23.png"
SPLIT = ("network_s", "coding_s", "synthesis_s")


def _named(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise JaxlicError(f"--weights takes NAME=PATH, not {item!r}")
        if name in out:
            raise JaxlicError(f"--weights: {name!r} given twice")
        out[name] = path
    return out


def streams_at_rate(codecs: dict, img: np.ndarray, bpp: float) -> dict:
    """Each codec's stream of ``img`` (at ``bpp`` where its rate can be chosen), its rate and PSNR."""
    h, w = img.shape[:2]
    out = {}
    for name, codec in codecs.items():
        data = codec.compress(img, target_bpp=bpp) if codec.variable_rate else codec.compress(img)
        ref = codec.decompress(data)  # also the compile of the decoder
        out[name] = {"stream": data, "image": ref, "bpp": 8 * len(data) / (h * w), "psnr": psnr(img, ref)}
    return out


def interleaved(codecs: dict, streams: dict, rounds: int) -> dict:
    """Decoding times over ``rounds`` rotated rounds: {name: {"decode_s": [...], split...}}."""

    def decode(name: str) -> dict:
        codec = codecs[name]
        out, seconds = harness.timed(codec.decompress, streams[name]["stream"])
        return {"decode_s": seconds, **{k: codec.last_timings[k] for k in SPLIT}, "image": out}

    def check(r: int, got: dict) -> None:
        for name, m in got.items():
            if not np.array_equal(m.pop("image"), streams[name]["image"]):
                raise JaxlicError(f"{name}: decoding round {r} gave another image than the first")

    per_round = harness.interleave({n: (lambda n=n: decode(n)) for n in codecs}, rounds, after_round=check)
    return {n: {k: [m[k] for m in ms] for k in ("decode_s", *SPLIT)} for n, ms in per_round.items()}


def summarize(times: dict, streams: dict) -> dict:
    """Medians per file and each file's per-round time over the first file's, median over rounds."""
    base = next(iter(times))
    rows = {}
    for name, t in times.items():
        rows[name] = {
            "bpp": streams[name]["bpp"],
            "psnr": streams[name]["psnr"],
            "decode_s": harness.median(t["decode_s"]),
            "decode_s_min": min(t["decode_s"]),
            "decode_s_max": max(t["decode_s"]),
            **{f"{k[:-2]}_s_median": harness.median(t[k]) for k in SPLIT},
            f"ratio_over_{base}": harness.median_ratio(t["decode_s"], times[base]["decode_s"]),
            "times": t["decode_s"],
        }
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eval.decode_time",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--weights", action="append", required=True, help="NAME=weights file (the first is the reference)"
    )
    p.add_argument("--image", help="PNG to decode (default: Kodak's kodim23)")
    p.add_argument("--bpp", type=float, default=0.15, help="rate of the variable-rate streams (default 0.15)")
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    run = harness.Run("eval.decode_time", argv)
    from jaxlic import zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.image_io import read_image  # pylint: disable=g-import-not-at-top

    try:
        if a.rounds < 1:
            raise JaxlicError("--rounds must be at least 1")
        paths = _named(a.weights)
        image = a.image or str(KODIM23)
        if not pathlib.Path(image).exists():
            raise JaxlicError(f"no image at {image} (give one with --image)")
        img = read_image(image)[0]
        codecs = {n: zoo.load(weights=w) for n, w in paths.items()}
        streams = streams_at_rate(codecs, img, a.bpp)
        rows = summarize(interleaved(codecs, streams, a.rounds), streams)
    except JaxlicError as e:
        print(f"decode_time: error: {e}", file=sys.stderr)
        return 1
    base = next(iter(rows))
    prov = run.provenance()
    print(
        f"{image}: {a.rounds} interleaved rounds on {prov['cpus_usable']} cpus, load {prov['loadavg_at_start']}"
    )
    for name, r in rows.items():
        print(
            f"{name:>12}: {r['bpp']:.3f} bpp {r['psnr']:.2f} dB  decode {r['decode_s']:.3f} s "
            f"[{r['decode_s_min']:.3f}, {r['decode_s_max']:.3f}] (network {r['network_s_median']:.3f} with g_s "
            f"{r['synthesis_s_median']:.3f}, range coding {r['coding_s_median']:.3f})  "
            f"/ {base} {r[f'ratio_over_{base}']:.2f}x"
        )
    if a.json:
        record = {
            **prov,
            "image": image,
            "target_bpp": a.bpp,
            "rounds": a.rounds,
            "weights": paths,
            "results": rows,
        }
        harness.write_json(a.json, record, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
