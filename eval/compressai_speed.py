"""Times CompressAI's models one round at a time, for eval.speed to interleave with its own codecs.

Run with the *reference* interpreter (see tools/make_reference_env.sh); it must not import jaxlic
(CompressAI pins numpy<2). eval.speed starts it as

    .venv-ref/bin/python eval/compressai_speed.py --models Cheng2020AnchorCheckerboard,Cheng2020Anchor --N 128

and drives it with eval/worker.py's line protocol:

    (on start)    -> {"ready": [models], "torch", "compressai", "threads"}
    load PATH     -> {"ok": true}             the image every later round codes
    round MODEL   -> {"encode_s", "decode_s", "bytes", "psnr"}   one compress + decompress

Models are random-init at width N (quality 3's width), CPU, torch.no_grad. The client does the
warm-up (its first round per model is not counted).
"""

import argparse

import harness  # eval/harness.py and eval/worker.py: this script's folder is on the path
import numpy as np
from worker import serve


def build(name: str, n: int):
    import compressai.models as cm
    import torch

    try:
        cls = getattr(cm, name)
    except AttributeError:
        from compressai.models import sensetime

        cls = getattr(sensetime, name)
    torch.manual_seed(0)
    net = cls(N=n).eval()
    net.update(force=True)
    return net


def load(path: str):
    import torch
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[2:]
    ph, pw = (64 - h % 64) % 64, (64 - w % 64) % 64
    return img, torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")


def one_round(net, img: np.ndarray, x) -> dict:
    c, encode_s = harness.timed(net.compress, x)
    out, decode_s = harness.timed(net.decompress, c["strings"], c["shape"])
    h, w = img.shape[:2]
    rec = out["x_hat"][0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy()
    mse = np.mean((np.round(rec * 255.0) - img.astype(np.float64)) ** 2)
    return {
        "encode_s": encode_s,
        "decode_s": decode_s,
        "bytes": sum(len(s[0]) for s in c["strings"]),
        "psnr": float(10 * np.log10(255.0**2 / max(mse, 1e-10))),
    }


def handlers(nets: dict, load, code) -> dict:
    """The requests: ``load PATH`` (``load(path)`` -> image) and ``round MODEL``
    (``code(nets[MODEL], image)`` -> timings)."""
    image = []

    def load_image(path):
        image[:] = [load(path)]
        return {"ok": True}

    def round_(model):
        if not image:
            raise ValueError("no image loaded")
        if model not in nets:
            raise ValueError(f"unknown model {model!r}; serving {sorted(nets)}")
        return code(nets[model], image[0])

    return {"load": load_image, "round": round_}


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="Cheng2020AnchorCheckerboard,Cheng2020Anchor")
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    nets = {name: build(name, a.N) for name in a.models.split(",")}

    def code(net, image):
        with torch.no_grad():
            return one_round(net, *image)

    about = {**harness.versions("torch", "compressai"), "threads": torch.get_num_threads()}
    serve(handlers(nets, load, code), sorted(nets), about)


if __name__ == "__main__":
    main()
