"""Streams written under one XLA CPU configuration decode bit-exactly under others ("Train anywhere").

One subprocess encodes a small image with one model of every kind (tiny random weights, drawn by
the test and saved as weight files) and the shipped ckbd-full weights on a Kodak photo, under the default XLA
configuration (A), and decodes each stream there too. Decoding subprocesses then run, all at once,
under other configurations (B): the SSE4.2 instruction set only (no AVX/FMA), XLA's fast math, and
one thread on one core. Each must decode every stream without error to the same latents and the
same pixels as A. A fresh process under A decodes the shipped model's stream as well; the tiny
models' fresh-process decoding under A is tests/test_latent_codecs.py's.

The kinds (`KINDS`) cover the three entropy models (scale-only Gaussian, mean-scale Gaussian,
Gaussian mixture), the three context models (none, checkerboard, serial), both transforms, both
attention modules and post-processing; `test_kinds_cover_the_registry` fails when a registered
model brings something they miss. What makes this work is that the entropy-parameter path
(hyper-synthesis, context model, entropy parameters, then `gaussian.scale_indexes` /
`mixture.quantize_params`) gives the decoder the encoder's integers.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxlic.models.registry import get_config, list_models

# One xdist worker runs the whole module, so the encoder and decoder subprocesses run once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cross_config")]

# One registered model per kind: together they hold every entropy model, context model,
# transform, attention module and post-processing (test_kinds_cover_the_registry).
KINDS = ["bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "cheng2020-attn", "ckbd", "ckbd-full"]
SHIPPED = "shipped-ckbd-full"
CASES = KINDS + [SHIPPED]
FEATURES = ("transform", "hyper", "context", "entropy", "attention", "postprocess")
KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim23.png"

_ONE_THREAD_FLAGS = "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false"
CONFIGS = {
    "default": {},  # a fresh process under the encoder's own configuration (shipped model only)
    "sse4_2": {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"},
    "fast_math": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"},
    "one_thread": {"XLA_FLAGS": _ONE_THREAD_FLAGS, "OMP_NUM_THREADS": "1"},
}

# The synthesis transform (g_s + post-processing at N = 64, not part of the bitstream's integer
# path) is plain float32 convolution: under SSE4.2 or fast math XLA picks other kernels, x_hat
# moves by up to 3.6e-7 and a handful of the 1.2 M pixels round to the next level (10-12 pixels
# by 1 on kodim23). The latents are still identical (checked by test_same_latents). A fix
# belongs in jaxlic/models (see the xfail reason); the tiny random models do not show it.
_SYNTH_REASON = (
    "shipped ckbd-full: latents identical, but float32 synthesis (g_s + post-processing) differs "
    "by ~1 ulp under another ISA / fast math, so ~10 of 1.2 M pixels round to the next level; "
    "needs an ISA-independent synthesis in jaxlic/models (e.g. exact integer-valued convs)"
)
XFAIL_PIXELS = {(SHIPPED, "sse4_2"), (SHIPPED, "fast_math")}

_WORKER = r"""
import json, pathlib, sys, traceback
import numpy as np

mode, root = sys.argv[1], pathlib.Path(sys.argv[2])
from jaxlic import zoo

cases = json.loads((root / "cases.json").read_text())
if mode == "default":  # a fresh process under the encoder's configuration: the shipped model only
    cases = ["shipped-ckbd-full"]
inputs = np.load(root / "inputs.npz")
errors = {}
for name in cases:
    try:
        if name == "shipped-ckbd-full":
            codec, img = zoo.load("ckbd-full"), inputs["photo"]
        else:
            codec, img = zoo.load(weights=str(root / f"{name}.msgpack")), inputs["small"]
        if mode == "encode":
            (root / f"{name}.jlic").write_bytes(codec.compress(img))
        seen = {}
        if hasattr(codec, "synthesize"):
            synthesize = codec.synthesize

            def capture(y_hat, *args, synthesize=synthesize, **kwargs):
                seen["y_hat"] = np.array(y_hat)
                return synthesize(y_hat, *args, **kwargs)

            codec.synthesize = capture
        out = codec.decompress((root / f"{name}.jlic").read_bytes())
        np.savez(root / f"{name}.{mode}.npz", img=out, **seen)
    except Exception:
        errors[name] = traceback.format_exc()
(root / f"errors.{mode}.json").write_text(json.dumps(errors))
"""


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "OMP_NUM_THREADS")}
    env["JAXLIC_NO_COMPILE_CACHE"] = "1"
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        env.pop(name, None)  # compiled here, under each configuration
    env.update(extra)
    return env


def _cmd(mode: str, root: pathlib.Path) -> list[str]:
    cmd = [sys.executable, "-c", _WORKER, mode, str(root)]
    if mode == "one_thread" and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return cmd


@pytest.fixture(scope="module")
def root(tmp_path_factory, small_codec, save_codec):
    from skimage import data

    root = tmp_path_factory.mktemp("cross_config")
    small = np.ascontiguousarray(data.astronaut()[100:164, 200:296])  # 64 x 96 photo crop
    if KODAK.exists():
        from jaxlic.image_io import read_image

        photo = read_image(str(KODAK))[0]  # 768 x 512
    else:
        photo = data.astronaut()
    np.savez(root / "inputs.npz", small=small, photo=photo)
    # The tiny models' random weights are drawn here and saved: they are data, and initialising
    # them in the encoder process would compile a threefry kernel per parameter shape there.
    for name in KINDS:
        save_codec(small_codec(name), root / f"{name}.msgpack")
    (root / "cases.json").write_text(json.dumps(CASES))
    subprocess.run(_cmd("encode", root), env=_env({}), check=True, timeout=1200)
    return root


@pytest.fixture(scope="module")
def decoded(root):
    """Runs the decoders of all configurations at once (compilation is mostly single-threaded)."""
    procs = {
        name: subprocess.Popen(_cmd(name, root), env=_env(extra), stderr=subprocess.PIPE, text=True)
        for name, extra in CONFIGS.items()
    }
    failed = {}
    for name, p in procs.items():
        _, err = p.communicate(timeout=1200)
        if p.returncode:
            failed[name] = err[-3000:]
    assert not failed, failed
    return root


def _load(root, name, mode):
    errors = json.loads((root / f"errors.{mode}.json").read_text())
    assert name not in errors, f"{name} under {mode}:\n{errors[name]}"
    return np.load(root / f"{name}.{mode}.npz")


# (case, configuration) pairs decoded: every case under B, the shipped model under A as well.
PAIRS = [(n, c) for n in CASES for c in CONFIGS if c != "default" or n == SHIPPED]


def test_kinds_cover_the_registry():
    """Every value of every feature a registered model has is held by one of KINDS."""
    configs = {name: get_config(name) for name in list_models()}
    assert set(KINDS) <= set(configs)
    for feature in FEATURES:
        have = {getattr(configs[n], feature) for n in KINDS}
        missing = {n: getattr(c, feature) for n, c in configs.items() if getattr(c, feature) not in have}
        assert not missing, f"no case of KINDS has the {feature} of {missing}: add one"


@pytest.mark.parametrize("name,config", PAIRS)
def test_same_latents(decoded, name, config):
    ref, out = _load(decoded, name, "encode"), _load(decoded, name, config)
    if "y_hat" not in ref.files:
        pytest.skip("the codec has no synthesize() to observe the latents")
    # A wrong symbol moves y_hat by at least 1; means (mean-scale models) add float values.
    np.testing.assert_allclose(out["y_hat"], ref["y_hat"], rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "config,name",
    [
        pytest.param(c, n, marks=pytest.mark.xfail(strict=True, reason=_SYNTH_REASON))
        if (n, c) in XFAIL_PIXELS
        else (c, n)
        for n, c in PAIRS
    ],
)
def test_same_pixels(decoded, name, config):
    ref, out = _load(decoded, name, "encode"), _load(decoded, name, config)
    assert out["img"].shape == ref["img"].shape
    diff = int(np.count_nonzero(out["img"] != ref["img"]))
    assert diff == 0, f"{diff} of {ref['img'].size} pixel values differ"
