"""Encode/decode speed of checkerboard vs. serial context decoding, and module FLOPs.

    python -m eval.speed --json results/speed.json
    python -m eval.speed --images ../shared/data/kodak --weights jaxlic/pretrained/ckbd-full-q2.msgpack
    python -m eval.speed --compressai-python .venv-ref/bin/python   # + CompressAI, same rounds

Default: one 768x512 image (Kodak's kodim23 when ../shared is present, else a crop of
scikit-image's astronaut), random-init weights at N=M=128 for `ckbd`, `ckbd-full` and the serial
`cheng2020-anchor`; after one warm-up each, `--repeats` rounds coding with every codec in a
rotated order (side by side: a change of the machine's load falls on all alike), medians, each
time split into network and range-coding seconds. Prints the decode-time ratio serial /
checkerboard (the median over rounds of the two times in the same round) and XLA's FLOP counts
of FDRAM vs. Cheng's attention block and of post-processing vs. the synthesis transform.
With `--compressai-python`, CompressAI's `Cheng2020AnchorCheckerboard` and `Cheng2020Anchor`
(random init, width N) run in that interpreter and take their turns in the same rounds
(eval/compressai_speed.py); their ratios to ours are per-round medians too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pathlib
import sys
import tempfile

import numpy as np

from eval import harness
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


def _code(codec, img: np.ndarray) -> dict:
    """One encode + decode of ``img``: seconds (split into network and range coding where the
    codec reports it), stream bytes and PSNR. A codec with ``time_round`` times itself (another
    process, e.g. CompressAI's interpreter)."""
    if hasattr(codec, "time_round"):
        return codec.time_round(img)
    data, encode_s = harness.timed(codec.compress, img)
    timings = {"encode": dict(codec.last_timings)}
    out, decode_s = harness.timed(codec.decompress, data)
    timings["decode"] = codec.last_timings
    split = {k: timings[phase][key] for k, (phase, key) in SPLIT.items()}
    return {"encode_s": encode_s, "decode_s": decode_s, **split, "bytes": len(data), "psnr": psnr(img, out)}


def time_codecs(codecs: dict, img: np.ndarray, repeats: int) -> dict:
    """Encode/decode seconds of every codec on ``img``, measured side by side.

    Each codec codes the image once first (the compile, not timed); then ``repeats`` rounds, each
    coding with every codec in a rotated order, so that a change of the machine's load falls on
    every codec alike. Per codec: the medians (with the network / range-coding split where the
    codec reports it) and the per-round times (``rounds_encode_s``, ``rounds_decode_s``) for
    ratios within a round.
    """
    # warm-up (compile encoder and decoder), then the rounds
    rounds = harness.interleave(
        {name: (lambda c=codec: _code(c, img)) for name, codec in codecs.items()}, repeats, warmup=1
    )
    h, w = img.shape[:2]
    res = {}
    for name, rs in rounds.items():
        res[name] = harness.medians(rs, [k for k in rs[0] if k.endswith("_s")])
        res[name]["rounds_encode_s"] = [x["encode_s"] for x in rs]
        res[name]["rounds_decode_s"] = [x["decode_s"] for x in rs]
        res[name].update(bytes=rs[-1]["bytes"], bpp=8 * rs[-1]["bytes"] / (h * w), psnr=rs[-1]["psnr"])
    return res


def round_ratio(per_image: list[dict], num: str, den: str, key: str = "rounds_decode_s") -> float:
    """Median over images and rounds of ``num``'s time over ``den``'s in the same round."""
    return harness.median(r for res in per_image for r in harness.ratios(res[num][key], res[den][key]))


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


COMPRESSAI_SCRIPT = REPO / "eval" / "compressai_speed.py"
COMPRESSAI_MODELS = ("Cheng2020AnchorCheckerboard", "Cheng2020Anchor")


class ExternalCodecs:
    """Codecs timed in another interpreter (eval/compressai_speed.py, driven by an
    eval.worker.Worker), one round per request, so that ``time_codecs`` interleaves them with
    jaxlic's codecs round by round.

    ``codec(model)`` gives an object with ``time_round(img)``. The image goes over as a PNG in a
    temporary folder, once per image. A failure of the other process is a one-line RuntimeError.
    """

    def __init__(self, python: str, models, n: int, script: pathlib.Path | str | None = None):
        from eval.worker import Worker

        self._dir = tempfile.TemporaryDirectory()
        cmd = [python, str(script or COMPRESSAI_SCRIPT), "--models", ",".join(models), "--N", str(n)]
        self.worker = Worker(cmd, what="CompressAI timing process")  # waits until the models are built
        self.models, self.about = self.worker.ready, self.worker.about
        self._image = None

    def time_round(self, model: str, img: np.ndarray) -> dict:
        key = (img.shape, hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest())
        if key != self._image:
            from PIL import Image

            path = os.path.join(self._dir.name, "image.png")
            Image.fromarray(img).save(path)
            self.worker.ask(f"load {path}")
            self._image = key
        return self.worker.ask(f"round {model}")

    def codec(self, model: str):
        return _ExternalCodec(self, model)

    def close(self) -> None:
        self.worker.close()
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ExternalCodec:
    def __init__(self, server: ExternalCodecs, model: str):
        self.server, self.model = server, model

    def time_round(self, img: np.ndarray) -> dict:
        return self.server.time_round(self.model, img)


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
    run = harness.Run("eval.speed", argv)
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
    ours = dict(codecs)

    results: dict = {
        "images": [p for _, p in images],
        "N": a.N,
        "encode_s": {},
        "decode_s": {},
        "detail": {},
        "rounds_decode_s": {},  # per codec, per image: the decode seconds of each round
    }
    with contextlib.ExitStack() as stack:
        if a.compressai_python:  # CompressAI's codecs take their turns in the same rounds
            print("starting CompressAI's interpreter ...", flush=True)
            server = stack.enter_context(ExternalCodecs(a.compressai_python, COMPRESSAI_MODELS, a.N))
            for m in COMPRESSAI_MODELS:
                codecs[f"compressai {m}"] = server.codec(m)
            results["compressai_env"] = server.about
        per_image = [
            time_codecs(codecs, img, a.repeats) for img, _ in tqdm(images, desc="images", leave=False)
        ]
    results["repeats"] = a.repeats
    results["interleaved"] = True
    for name in codecs:
        agg = harness.medians(
            [r[name] for r in per_image], [k for k in per_image[0][name] if k[:7] != "rounds_"]
        )
        results["detail"][name] = agg
        results["rounds_decode_s"][name] = [r[name]["rounds_decode_s"] for r in per_image]
        results["encode_s"][name] = agg["encode_s"]
        results["decode_s"][name] = agg["decode_s"]
        if name in ours:
            split = (
                f"encode {agg['encode_s']:.3f}s (net {agg['encode_network_s']:.3f} + coding "
                f"{agg['encode_coding_s']:.3f})  decode {agg['decode_s']:.3f}s (net {agg['decode_network_s']:.3f}"
                f" + coding {agg['decode_coding_s']:.3f}; g_s {agg['decode_synthesis_s']:.3f})"
            )
        else:
            split = f"encode {agg['encode_s']:.3f}s  decode {agg['decode_s']:.3f}s"
        print(f"{name:>34}: {split}  {agg['bpp']:.3f} bpp  {agg['psnr']:.2f} dB", flush=True)

    from jaxlic.latent.schedules import Checkerboard, Serial

    serial = [n for n, c in ours.items() if isinstance(c.model.latent.schedule, Serial)]
    ckbd = [n for n, c in ours.items() if isinstance(c.model.latent.schedule, Checkerboard)]
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
        ca = {m: results["detail"][f"compressai {m}"] for m in COMPRESSAI_MODELS}
        results["compressai_decode_s"] = {m: v["decode_s"] for m, v in ca.items()}
        results["compressai_encode_s"] = {m: v["encode_s"] for m, v in ca.items()}
        # ratios within a round, like the serial / checkerboard one
        for mine, theirs, key in (
            (ckbd, "Cheng2020AnchorCheckerboard", "ratio_compressai_ckbd_over_ours_decode"),
            (serial, "Cheng2020Anchor", "ratio_compressai_serial_over_ours_decode"),
        ):
            if mine:
                results[key] = round_ratio(per_image, f"compressai {theirs}", mine[0])
                print(
                    f"CompressAI {theirs} decode / our {mine[0]} (median of per-round ratios): {results[key]:.2f}x"
                )

    if not a.no_flops:
        fl = flops_report(a.N)
        results["flops"] = fl
        print(
            f"FLOPs  FDRAM {fl['fdram']:.3e} vs Cheng attention {fl['cheng_attention']:.3e} "
            f"({fl['ratio_fdram_over_cheng']:.1%});  post-processing {fl['postprocess']:.3e} vs "
            f"synthesis {fl['synthesis']:.3e} ({fl['ratio_postprocess_over_synthesis']:.1%})"
        )

    if a.json:
        prov = run.provenance()
        results = {**prov, "device": f"{prov['jax_device']} ({prov['machine']})", **results}
        harness.write_json(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
