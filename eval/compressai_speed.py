"""Times CompressAI's models; run with the *reference* interpreter (see tools/make_reference_env.sh).

    .venv-ref/bin/python eval/compressai_speed.py IMAGE.png --models Cheng2020AnchorCheckerboard,Cheng2020Anchor

Prints one JSON object: {model: {"encode_s": median, "decode_s": median, "bytes": n}} for random-init
weights at N=128 (quality 3's width), CPU, torch.no_grad, median of --repeats runs after a warm-up.
It must not import jaxlic (different numpy); it is a standalone script.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image


def build(name: str, n: int):
    import compressai.models as cm

    try:
        cls = getattr(cm, name)
    except AttributeError:
        from compressai.models import sensetime

        cls = getattr(sensetime, name)
    torch.manual_seed(0)
    net = cls(N=n).eval()
    net.update(force=True)
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--models", default="Cheng2020AnchorCheckerboard,Cheng2020Anchor")
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    img = np.asarray(Image.open(a.image).convert("RGB"), np.float32) / 255.0
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    h, w = x.shape[2:]
    ph, pw = (64 - h % 64) % 64, (64 - w % 64) % 64
    x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    out = {}
    with torch.no_grad():
        for name in a.models.split(","):
            net = build(name, a.N)
            enc, dec = [], []
            for r in range(a.repeats + 1):
                t0 = time.perf_counter()
                c = net.compress(x)
                t1 = time.perf_counter()
                net.decompress(c["strings"], c["shape"])
                t2 = time.perf_counter()
                if r:  # first run is the warm-up
                    enc.append(t1 - t0)
                    dec.append(t2 - t1)
            nbytes = sum(len(s[0]) for s in c["strings"])
            out[name] = {
                "encode_s": statistics.median(enc),
                "decode_s": statistics.median(dec),
                "bytes": nbytes,
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
