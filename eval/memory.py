"""Large-image decoding: peak memory and the cost of tiled synthesis.

    python -m eval.memory                       # 4000x3000, shipped default weights
    python -m eval.memory --weights FILE --size 4000x3000 --json results/memory.json

1. Compresses a large image (an up-scaled scikit-image sample, or --image) in one subprocess and
   decompresses it in another, reporting each one's peak resident memory (ru_maxrss), its time
   and the rate/PSNR.
2. On a crop of at most 1536x1024 it decodes once with whole-image synthesis and once tiled (the
   default for large images) and prints the PSNR difference (target: < 0.05 dB).
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
from jaxlic.metrics import psnr

_CHILD = (
    harness.CHILD_IMPORT
    + r"""
import json, resource
import numpy as np
from PIL import Image
from jaxlic import zoo
mode, weights, src, dst = sys.argv[1:5]
codec = zoo.load(weights=weights or None)
codec.max_pixels = 1 << 30
with harness.Timer() as t:
    if mode == "compress":
        data = codec.compress(np.asarray(Image.open(src).convert("RGB")))
        open(dst, "wb").write(data)
    else:
        img = codec.decompress(open(src, "rb").read())
        Image.fromarray(img).save(dst)
print(json.dumps({"seconds": t.seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
)


def _child(mode, weights, src, dst) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, weights or "", src, dst], capture_output=True, text=True
    )
    if r.returncode:
        raise SystemExit(f"{mode} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="weights file (default: the shipped default model)")
    ap.add_argument("--image", help="large image to use (default: up-scaled astronaut)")
    ap.add_argument("--size", default="4000x3000", help="WxH of the generated test image")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    run = harness.Run("eval.memory", argv)

    from PIL import Image

    from jaxlic import zoo

    if a.image:
        img = np.asarray(Image.open(a.image).convert("RGB"))
    else:
        from skimage import data

        w, h = map(int, a.size.lower().split("x"))
        img = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC))
    res: dict = {"size": [int(img.shape[1]), int(img.shape[0])]}
    with tempfile.TemporaryDirectory() as d:
        src, jl, out = (str(pathlib.Path(d) / n) for n in ("in.png", "s.jlic", "out.png"))
        Image.fromarray(img).save(src)
        res["compress"] = _child("compress", a.weights, src, jl)
        res["decompress"] = _child("decompress", a.weights, jl, out)
        rec = np.asarray(Image.open(out))
        res["bpp"] = 8 * pathlib.Path(jl).stat().st_size / (img.shape[0] * img.shape[1])
        res["psnr"] = psnr(rec, img)
    print(
        f"{res['size'][0]}x{res['size'][1]}: compress {res['compress']['seconds']:.1f}s, peak RSS "
        f"{res['compress']['peak_rss_mb']:.0f} MB; decompress {res['decompress']['seconds']:.1f}s, "
        f"peak RSS {res['decompress']['peak_rss_mb']:.0f} MB; {res['bpp']:.3f} bpp, {res['psnr']:.2f} dB"
    )

    codec = zoo.load(weights=a.weights)
    crop = img[: min(1024, img.shape[0]), : min(1536, img.shape[1])]
    data = codec.compress(crop)
    tiled = codec.decompress(data)
    codec.tile = 0
    whole = codec.decompress(data)
    res["tiling"] = {
        "crop": list(crop.shape[:2]),
        "psnr_whole": psnr(whole, crop),
        "psnr_tiled": psnr(tiled, crop),
    }
    res["tiling"]["psnr_loss_db"] = res["tiling"]["psnr_whole"] - res["tiling"]["psnr_tiled"]
    print(
        f"tiled vs whole-image synthesis on {crop.shape[1]}x{crop.shape[0]}: "
        f"{res['tiling']['psnr_tiled']:.3f} vs {res['tiling']['psnr_whole']:.3f} dB "
        f"(loss {res['tiling']['psnr_loss_db']:.4f} dB)"
    )
    if a.json:
        harness.write_json(a.json, {**res, "provenance": run.provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
