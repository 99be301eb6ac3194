"""Write the CompressAI reference fixtures in tests/fixtures/compressai/.

Runs ONLY in the reference environment (CompressAI 1.2.8 needs numpy<2, jaxlic needs numpy>=2):

    bash tools/make_reference_env.sh                       # once: builds .venv-ref/
    .venv-ref/bin/python tools/make_compressai_fixtures.py  # rewrites the fixtures

The output is deterministic for a given (torch, compressai) pair: fixed seeds, CPU, float32.

For every model in ``MODELS`` it builds the CompressAI model at small widths with random
weights, runs it on a 64x128 crop (sides must be multiples of 64) of ``skimage.data.astronaut()`` and stores
``<model>.npz`` (``np.savez_compressed``, all float32 unless noted):

* ``state_dict/<key>``: every tensor of ``model.state_dict()`` after ``update(force=True)``,
  EXCEPT the GaussianConditional CDF buffers ``*gaussian_conditional._quantized_cdf``,
  ``._offset``, ``._cdf_length`` (they are the same for every model, depend only on the
  ``scale_table`` buffer, which is kept, and would dominate the file size: they are written once
  to ``gaussian_tables.npz``). EntropyBottleneck CDF buffers are kept.
* ``meta``: JSON string (model, class, N, M, seeds, versions, crop, the per-array notes below).
* ``x_uint8`` ``[1, H, W, 3]`` uint8; the model input was ``x = x_uint8 / 255`` (float32, NCHW).
* Eval-mode ``forward(x)`` (``model.eval()``; CompressAI rounds, it adds no noise):
  ``y`` (g_a output), ``z`` (h_a output), ``z_hat`` = ``round(z - medians) + medians``
  (the h_s input), ``y_hat`` = the g_s input, ``scales_hat``/``means_hat`` (what
  GaussianConditional got; bmshj2018-hyperprior has no means), ``likelihoods_y``,
  ``likelihoods_z``, ``x_hat`` (not clamped).
  ``y_hat`` is ``round(y - means_hat) + means_hat`` for every model except mbt2018 and the two
  cheng2020 (serial-context) models, whose forward feeds ``round(y)`` (no means) to both the
  context model and g_s while the likelihood still uses ``round(y - means_hat) + means_hat``.
  For cheng2020-anchor-checkerboard the anchors use means from a zero context (the context
  conv's bias is zeroed too), the non-anchors use the context of the quantized anchors.
* ``compress()`` -> ``decompress()``: ``dec_y_hat`` (g_s input in decompress), ``dec_x_hat``
  (clamped to [0, 1]), ``nbytes_y``, ``nbytes_z`` (int64, total string bytes).

Besides: ``gaussian_tables.npz`` (the GaussianConditional ``scale_table``, ``quantized_cdf``,
``offset``, ``cdf_length`` buffers) and ``bmshj2018-hyperprior.pth.tar``, a real
``torch.save({"state_dict": sd}, ...)`` checkpoint of the same bmshj2018-hyperprior model,
COMPLETE (with every CDF buffer), as CompressAI's published checkpoints are.

The random weights are made non-trivial on purpose (a zero latent would test nothing): GDN
beta/gamma, entropy-bottleneck density and medians are perturbed, and the last layers of g_a,
h_a and g_s are rescaled so that y, z spread over several quantization bins and x_hat lies
mostly inside [0, 1].
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import compressai
import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import (
    Cheng2020Anchor,
    Cheng2020Attention,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)
from compressai.models.sensetime import Cheng2020AnchorCheckerboard

# name -> (class, kwargs, seed)
MODELS = {
    "bmshj2018-hyperprior": (ScaleHyperprior, {"N": 12, "M": 16}, 1),
    "mbt2018-mean": (MeanScaleHyperprior, {"N": 12, "M": 16}, 2),
    "mbt2018": (JointAutoregressiveHierarchicalPriors, {"N": 12, "M": 16}, 3),
    "cheng2020-anchor": (Cheng2020Anchor, {"N": 12}, 4),
    "cheng2020-attn": (Cheng2020Attention, {"N": 12}, 5),
    "cheng2020-anchor-checkerboard": (Cheng2020AnchorCheckerboard, {"N": 12}, 6),
}
SERIAL_CONTEXT = ("mbt2018", "cheng2020-anchor", "cheng2020-attn")
CROP = (slice(176, 240), slice(184, 312))  # rows, cols of the 512x512 astronaut: 64 x 128
GAUSSIAN_CDF_BUFFERS = (
    "gaussian_conditional._quantized_cdf",
    "gaussian_conditional._offset",
    "gaussian_conditional._cdf_length",
)
TARGET_Y_STD, TARGET_Z_STD = 3.0, 2.0


def load_image() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[CROP])  # [64, 128, 3] uint8


def submodule(net, dotted):
    m = net
    for part in dotted.split("."):
        m = getattr(m, part)
    return m


def parts(name):
    """Dotted paths of (g_a, h_a, h_s, g_s, entropy_bottleneck, gaussian_conditional)."""
    if name == "cheng2020-anchor-checkerboard":
        hyper, y = "latent_codec.hyper", "latent_codec.y"
        return {
            "g_a": "g_a",
            "g_s": "g_s",
            "h_a": f"{hyper}.h_a",
            "h_s": f"{hyper}.h_s",
            "eb": f"{hyper}.entropy_bottleneck",
            "gc": f"{y}.y.gaussian_conditional",
        }
    return {
        "g_a": "g_a",
        "g_s": "g_s",
        "h_a": "h_a",
        "h_s": "h_s",
        "eb": "entropy_bottleneck",
        "gc": "gaussian_conditional",
    }


@torch.no_grad()
def perturb(net, gen):
    """Random but valid GDN and entropy-bottleneck parameters."""

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    for m in net.modules():
        if isinstance(m, GDN):
            c = m.beta.shape[0]
            m.beta.copy_(m.beta_reparam.init(0.5 + rand(c)))
            gamma = 0.1 * torch.eye(c) + 0.05 * rand(c, c)
            m.gamma.copy_(m.gamma_reparam.init(gamma))
        if isinstance(m, EntropyBottleneck):
            for p in list(m.biases) + list(m.factors):
                p.add_(0.3 * (rand(*p.shape) - 0.5))
            for p in m.matrices:
                p.mul_(1 + 0.2 * (rand(*p.shape) - 0.5))
            c = m.quantiles.shape[0]
            m.quantiles[:, 0, 1] = rand(c) - 0.5
            m.quantiles[:, 0, 0] = m.quantiles[:, 0, 1] - 8 - 4 * rand(c)
            m.quantiles[:, 0, 2] = m.quantiles[:, 0, 1] + 8 + 4 * rand(c)


def last_conv(module):
    """The last top-level (de)conv of a Sequential, looking into sub-pixel Sequentials only."""
    for child in reversed(list(module.children())):
        if isinstance(child, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            return child
        if isinstance(child, torch.nn.Sequential):
            return last_conv(child)
    raise ValueError(f"no top-level conv in {type(module).__name__}")


@torch.no_grad()
def calibrate(net, name, x):
    """Rescale the last layers so that the latents and x_hat are in a useful range."""
    p = parts(name)
    g_a, h_a, g_s = (submodule(net, p[k]) for k in ("g_a", "h_a", "g_s"))
    for _ in range(3):  # g_a of cheng2020-attn ends in an (almost linear) attention block
        y = g_a(x)
        conv = last_conv(g_a)
        f = TARGET_Y_STD / y.std().item()
        conv.weight.mul_(f)
        conv.bias.mul_(f)
    y = g_a(x)
    h_in = torch.abs(y) if name == "bmshj2018-hyperprior" else y
    z = h_a(h_in)
    conv = last_conv(h_a)
    f = TARGET_Z_STD / z.std().item()
    conv.weight.mul_(f)
    conv.bias.mul_(f)
    x_hat = g_s(torch.round(y))
    conv = last_conv(g_s)  # linear last layer: x_hat -> f * x_hat + c exactly
    f = 0.25 / x_hat.std().item()
    conv.weight.mul_(f)
    conv.bias.mul_(f)
    conv.bias.add_(0.5 - f * x_hat.mean().item())


class Recorder:
    """Forward (pre-)hooks that keep what flows into/out of the parts of the model."""

    def __init__(self, net, name):
        self.data = {}
        self.handles = []
        p = parts(name)

        def out_hook(key):
            def hook(mod, args, out):
                self.data[key] = out.detach().clone()

            return hook

        def in_hook(key):
            def hook(mod, args):
                self.data[key] = args[0].detach().clone()

            return hook

        def gc_hook(mod, args, kwargs):
            scales = args[1] if len(args) > 1 else kwargs["scales"]
            means = args[2] if len(args) > 2 else kwargs.get("means")
            self.data["scales_hat"] = scales.detach().clone()
            if means is not None:
                self.data["means_hat"] = means.detach().clone()

        self.handles.append(submodule(net, p["g_a"]).register_forward_hook(out_hook("y")))
        self.handles.append(submodule(net, p["h_a"]).register_forward_hook(out_hook("z")))
        self.handles.append(submodule(net, p["h_s"]).register_forward_pre_hook(in_hook("z_hat")))
        self.handles.append(submodule(net, p["g_s"]).register_forward_pre_hook(in_hook("y_hat")))
        self.handles.append(submodule(net, p["gc"]).register_forward_pre_hook(gc_hook, with_kwargs=True))

    def pop(self):
        data, self.data = self.data, {}
        return data

    def close(self):
        for h in self.handles:
            h.remove()


def nchw(t):
    return t.detach().cpu().numpy().astype(np.float32)


def string_bytes(strings):
    if isinstance(strings, (bytes, bytearray)):
        return len(strings)
    return sum(string_bytes(s) for s in strings)


def build(name):
    cls, kwargs, seed = MODELS[name]
    torch.manual_seed(seed)
    net = cls(**kwargs)
    gen = torch.Generator().manual_seed(1000 + seed)
    perturb(net, gen)
    net.eval()
    return net, cls, kwargs, seed


@torch.no_grad()
def run_model(name, img):
    net, cls, kwargs, seed = build(name)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    calibrate(net, name, x)
    net.update(force=True)

    rec = Recorder(net, name)
    out = net(x)
    fwd = rec.pop()
    enc = net.compress(x)
    dec_rec = rec.pop()  # compress() also runs g_a/h_a; only its y is used (to check below)
    dec = net.decompress(enc["strings"], enc["shape"])
    dec_data = rec.pop()
    rec.close()
    assert torch.equal(dec_rec["y"], fwd["y"])

    *y_strings, z_strings = enc["strings"]
    arrays = {
        "x_uint8": img[None],
        "y": nchw(fwd["y"]),
        "z": nchw(fwd["z"]),
        "z_hat": nchw(fwd["z_hat"]),
        "y_hat": nchw(fwd["y_hat"]),
        "scales_hat": nchw(fwd["scales_hat"]),
        "likelihoods_y": nchw(out["likelihoods"]["y"]),
        "likelihoods_z": nchw(out["likelihoods"]["z"]),
        "x_hat": nchw(out["x_hat"]),
        "dec_y_hat": nchw(dec_data["y_hat"]),
        "dec_x_hat": nchw(dec["x_hat"]),
        "nbytes_y": np.int64(string_bytes(y_strings)),
        "nbytes_z": np.int64(string_bytes(z_strings)),
    }
    if "means_hat" in fwd:
        arrays["means_hat"] = nchw(fwd["means_hat"])

    sd = net.state_dict()
    meta = {
        "model": name,
        "class": f"{cls.__module__}.{cls.__name__}",
        "kwargs": kwargs,
        "N": kwargs["N"],
        "M": kwargs.get("M", kwargs["N"]),
        "seed": seed,
        "compressai": compressai.__version__,
        "torch": torch.__version__,
        "image": "skimage.data.astronaut()[176:240, 184:312]",
        "forward_y_hat": "round(y)" if name in SERIAL_CONTEXT else "round(y - means_hat) + means_hat",
        "dropped_buffers": sorted(k for k in sd if k.endswith(GAUSSIAN_CDF_BUFFERS)),
        "layout": "NCHW float32, as CompressAI; x_uint8 is NHWC",
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    for k, v in sd.items():
        if not k.endswith(GAUSSIAN_CDF_BUFFERS):
            arrays[f"state_dict/{k}"] = v.detach().cpu().numpy()
    gc = submodule(net, parts(name)["gc"])
    stats = {
        "y_std": float(fwd["y"].std()),
        "z_std": float(fwd["z"].std()),
        "y_hat_nonzero": float((fwd["y_hat"] != 0).float().mean()),
        "x_hat_in_01": float(((out["x_hat"] >= 0) & (out["x_hat"] <= 1)).float().mean()),
        "bpp": 8.0 * (arrays["nbytes_y"] + arrays["nbytes_z"]) / (img.shape[0] * img.shape[1]),
        "psnr_dec_vs_fwd": float(
            -10 * torch.log10(((dec["x_hat"] - out["x_hat"].clamp(0, 1)) ** 2).mean() + 1e-20)
        ),
    }
    return net, arrays, gc, stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "compressai"))
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    img = load_image()

    for name in args.models:
        net, arrays, gc, stats = run_model(name, img)
        path = os.path.join(args.out, f"{name}.npz")
        np.savez_compressed(path, **arrays)
        print(f"{name}: {os.path.getsize(path) / 1024:.0f} KiB {json.dumps(stats)}")
        if name == "bmshj2018-hyperprior":
            pth = os.path.join(args.out, f"{name}.pth.tar")
            torch.save({"state_dict": net.state_dict()}, pth)
            print(f"{name}.pth.tar: {os.path.getsize(pth) / 1024:.0f} KiB")
            tables = {
                "scale_table": gc.scale_table.numpy(),
                "quantized_cdf": gc._quantized_cdf.numpy(),
                "offset": gc._offset.numpy(),
                "cdf_length": gc._cdf_length.numpy(),
            }
            np.savez_compressed(os.path.join(args.out, "gaussian_tables.npz"), **tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
