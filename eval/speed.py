"""Encode/decode speed of checkerboard vs. serial context decoding, and module FLOPs.

    python -m eval.speed --json results/speed.json
    python -m eval.speed --images ../shared/data/kodak --weights jaxlic/pretrained/ckbd-full-q2.msgpack
    python -m eval.speed --compressai-python .venv-ref/bin/python   # + CompressAI, same run

Default: one 768x512 image (Kodak's kodim23 when ../shared is present, else a crop of
scikit-image's astronaut), random-init weights at N=M=128 for `ckbd`, `ckbd-full` and the serial
`cheng2020-anchor`; after one warm-up each, `--repeats` rounds coding with every codec in a
rotated order (side by side: a change of the machine's load falls on all alike), medians, each
time split into network and range-coding seconds. Prints the decode-time ratio serial /
checkerboard (the median over rounds of the two times in the same round) and XLA's FLOP counts
of FDRAM vs. Cheng's attention block and of post-processing vs. the synthesis transform.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from jaxlic.evaluation.rd import provenance
from jaxlic.metrics import psnr

REPO = pathlib.Path(__file__).resolve().parents[1]
KODIM23 = REPO.parent / "shared" / "data" / "kodak" / "kodim23.png"


def default_image() -> tuple[np.ndarray, str]:
    from jaxlic.image_io import read_image

    if KODIM23.exists():
        return read_image(KODIM23)[0], str(KODIM23)
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((768, 768)).crop((0, 128, 768, 640))
    return np.asarray(img), "skimage astronaut (768x512 crop)"


SPLIT = {
    "encode_network_s": ("encode", "network_s"),
    "encode_coding_s": ("encode", "coding_s"),
    "decode_network_s": ("decode", "network_s"),
    "decode_coding_s": ("decode", "coding_s"),
    "decode_synthesis_s": ("decode", "synthesis_s"),
}


def rotated(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: the names rotated by ``r``, so each codec takes each place in turn."""
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def time_codecs(codecs: dict, img: np.ndarray, repeats: int) -> dict:
    """Encode/decode seconds of every codec on ``img``, measured side by side.

    Each codec codes the image once first (the compile, not timed); then ``repeats`` rounds, each
    coding with every codec in a rotated order, so that a change of the machine's load falls on
    every codec alike. Per codec: the medians with the network / range-coding split and the
    per-round times (``rounds_encode_s``, ``rounds_decode_s``) for ratios within a round.
    """
    names = list(codecs)
    rec = {n: {"encode_s": [], "decode_s": [], **{k: [] for k in SPLIT}} for n in names}
    last = {}
    for name in names:  # warm-up: compile encoder and decoder
        data = codecs[name].compress(img)
        last[name] = (data, codecs[name].decompress(data))
    for r in range(repeats):
        for name in rotated(names, r):
            codec = codecs[name]
            t0 = time.perf_counter()
            data = codec.compress(img)
            t1 = time.perf_counter()
            timings = {"encode": dict(codec.last_timings)}
            out = codec.decompress(data)
            t2 = time.perf_counter()
            timings["decode"] = codec.last_timings
            rec[name]["encode_s"].append(t1 - t0)
            rec[name]["decode_s"].append(t2 - t1)
            for k, (phase, key) in SPLIT.items():
                rec[name][k].append(timings[phase][key])
            last[name] = (data, out)
    h, w = img.shape[:2]
    res = {}
    for name in names:
        data, out = last[name]
        res[name] = {k: statistics.median(v) for k, v in rec[name].items()}
        res[name]["rounds_encode_s"] = rec[name]["encode_s"]
        res[name]["rounds_decode_s"] = rec[name]["decode_s"]
        res[name].update(bytes=len(data), bpp=8 * len(data) / (h * w), psnr=psnr(img, out))
    return res


def round_ratio(per_image: list[dict], num: str, den: str, key: str = "rounds_decode_s") -> float:
    """Median over images and rounds of ``num``'s time over ``den``'s in the same round."""
    return statistics.median(
        a / b for res in per_image for a, b in zip(res[num][key], res[den][key], strict=True)
    )


def flops_report(n: int = 128, h: int = 512, w: int = 768) -> dict:
    """XLA FLOPs of FDRAM vs. Cheng's attention block and post-processing vs. g_s."""
    import jax
    import jax.numpy as jnp

    from jaxlic.layers.attention import FDRAM, AttentionBlock
    from jaxlic.layers.flops import flops
    from jaxlic.layers.postprocess import PostProcess
    from jaxlic.models import get_model
    from jaxlic.models.compressor import Compressor

    def feat(scale):
        return jax.ShapeDtypeStruct((1, h // scale, w // scale, n), jnp.float32)

    # Cheng et al. place the attention blocks at 1/4 and 1/16 resolution; count both placements.
    fd = sum(flops(FDRAM(n), feat(s)) for s in (4, 16))
    ch = sum(flops(AttentionBlock(n), feat(s)) for s in (4, 16))
    model = get_model("ckbd", N=n)
    syn = flops(model, feat(16), method=Compressor.synthesis)
    pp = flops(PostProcess(features=model.cfg.pp_features), jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    return {
        "fdram": fd,
        "cheng_attention": ch,
        "postprocess": pp,
        "synthesis": syn,
        "ratio_fdram_over_cheng": fd / ch,
        "ratio_postprocess_over_synthesis": pp / syn,
    }


def compressai_times(python: str, image_path: str, n: int, repeats: int) -> dict:
    script = REPO / "eval" / "compressai_speed.py"
    cmd = [python, str(script), image_path, "--N", str(n), "--repeats", str(repeats)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"CompressAI timing failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="PNG to time on (default: kodim23 or a 768x512 sample)")
    ap.add_argument("--images", help="folder of images: time every image, report medians")
    ap.add_argument("--models", default="ckbd,ckbd-full,cheng2020-anchor")
    ap.add_argument("--weights", nargs="*", default=[], help="trained weight files (replace random init)")
    ap.add_argument("--N", type=int, default=128, help="width of the random-init models")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--compressai-python", help="interpreter of an environment with CompressAI")
    ap.add_argument("--no-flops", action="store_true")
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error("--repeats must be at least 1")

    from tqdm import tqdm

    from jaxlic import zoo
    from jaxlic.image_io import read_image

    if a.images:
        paths = sorted(
            p for p in pathlib.Path(a.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
        )
        images = [(read_image(p)[0], str(p)) for p in paths]
    elif a.image:
        images = [(read_image(a.image)[0], a.image)]
    else:
        images = [default_image()]

    codecs = {}
    if a.weights:
        for wpath in a.weights:
            c = zoo.load(weights=wpath)
            codecs[f"{c.name}-q{c.quality}"] = c
    else:
        for name in a.models.split(","):
            codecs[name] = zoo.random_codec(name, quality=3, N=a.N)

    results: dict = {
        **provenance("python -m eval.speed " + " ".join(sys.argv[1:] if argv is None else argv)),
        "device": _device(),
        "images": [p for _, p in images],
        "N": a.N,
        "encode_s": {},
        "decode_s": {},
        "detail": {},
    }
    per_image = [time_codecs(codecs, img, a.repeats) for img, _ in tqdm(images, desc="images", leave=False)]
    results["repeats"] = a.repeats
    results["interleaved"] = True
    for name in codecs:
        agg = {
            k: statistics.median(r[name][k] for r in per_image)
            for k in per_image[0][name]
            if k[:7] != "rounds_"
        }
        results["detail"][name] = agg
        results["encode_s"][name] = agg["encode_s"]
        results["decode_s"][name] = agg["decode_s"]
        print(
            f"{name:>22}: encode {agg['encode_s']:.3f}s (net {agg['encode_network_s']:.3f} + "
            f"coding {agg['encode_coding_s']:.3f})  decode {agg['decode_s']:.3f}s (net "
            f"{agg['decode_network_s']:.3f} + coding {agg['decode_coding_s']:.3f}; g_s {agg['decode_synthesis_s']:.3f})  "
            f"{agg['bpp']:.3f} bpp  {agg['psnr']:.2f} dB",
            flush=True,
        )

    from jaxlic.latent.schedules import Checkerboard, Serial

    serial = [n for n, c in codecs.items() if isinstance(c.model.latent.schedule, Serial)]
    ckbd = [n for n, c in codecs.items() if isinstance(c.model.latent.schedule, Checkerboard)]
    if serial and ckbd:
        # the median over rounds of the two codecs' times in the same round
        ratio = round_ratio(per_image, serial[0], ckbd[0])
        results["ratio_serial_over_ckbd_decode"] = ratio
        print(f"decode time ratio {serial[0]} / {ckbd[0]} (median of per-round ratios): {ratio:.2f}x")
        # The synthesis transform is the same work for both; the context model changes the rest.
        lat = {
            n: results["detail"][n]["decode_s"] - results["detail"][n]["decode_synthesis_s"]
            for n in (serial[0], ckbd[0])
        }
        results["ratio_serial_over_ckbd_latent_decode"] = lat[serial[0]] / lat[ckbd[0]]
        print(
            f"latent decoding (all but g_s) {serial[0]} {lat[serial[0]]:.3f}s / {ckbd[0]} "
            f"{lat[ckbd[0]]:.3f}s: {results['ratio_serial_over_ckbd_latent_decode']:.2f}x"
        )

    if a.compressai_python:
        if len(images) != 1:
            print("CompressAI timing uses the first image only")
        img, path = images[0]
        with tempfile.TemporaryDirectory() as d:
            if not os.path.exists(path):
                from PIL import Image

                path = os.path.join(d, "image.png")
                Image.fromarray(img).save(path)
            ca = compressai_times(a.compressai_python, path, a.N, a.repeats)
        results["compressai_decode_s"] = {k: v["decode_s"] for k, v in ca.items()}
        results["compressai_encode_s"] = {k: v["encode_s"] for k, v in ca.items()}
        for k, v in ca.items():
            print(f"{'compressai ' + k:>22}: encode {v['encode_s']:.3f}s  decode {v['decode_s']:.3f}s")
        if ckbd and "Cheng2020AnchorCheckerboard" in ca:
            r = ca["Cheng2020AnchorCheckerboard"]["decode_s"] / results["decode_s"][ckbd[0]]
            results["ratio_compressai_ckbd_over_ours_decode"] = r
            print(f"CompressAI checkerboard decode / ours: {r:.2f}x")
        if serial and "Cheng2020Anchor" in ca:
            r = ca["Cheng2020Anchor"]["decode_s"] / results["decode_s"][serial[0]]
            results["ratio_compressai_serial_over_ours_decode"] = r
            print(f"CompressAI serial decode / ours: {r:.2f}x")

    if not a.no_flops:
        fl = flops_report(a.N)
        results["flops"] = fl
        print(
            f"FLOPs  FDRAM {fl['fdram']:.3e} vs Cheng attention {fl['cheng_attention']:.3e} "
            f"({fl['ratio_fdram_over_cheng']:.1%});  post-processing {fl['postprocess']:.3e} vs "
            f"synthesis {fl['synthesis']:.3e} ({fl['ratio_postprocess_over_synthesis']:.1%})"
        )

    if a.json:
        pathlib.Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


def _device() -> str:
    import platform

    import jax

    return f"{jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus)"


if __name__ == "__main__":
    sys.exit(main())
