"""Converted CompressAI models compute what CompressAI computes (fixtures, no CompressAI needed).

tests/fixtures/compressai/<model>.npz hold a CompressAI 1.2.8 model with random weights at small
widths, its input and what its eval-mode forward() and compress()->decompress() gave
(tools/make_compressai_fixtures.py). We convert the state dict, run jaxlic and compare.

Tolerance: norm-relative error ||ours - theirs|| / ||theirs|| <= 1e-4. Two float32
implementations of the same conv stack (XLA vs. PyTorch's CPU kernels, different summation
orders) agree to ~1e-7 relative; one latent rounded the other way changes x_hat by ~1e-2
relative at these sizes, so 1e-4 separates float noise from a real mismatch by two orders
of magnitude on each side.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import convert
from jaxlic.entropy import gaussian_likelihood
from jaxlic.models.registry import get_model

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "compressai"
MODELS = [
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
    "cheng2020-anchor-checkerboard",
]
RTOL = 1e-4


def nhwc(a):
    return np.transpose(a, (0, 2, 3, 1))


def assert_close(ours, theirs, what):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    err = np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30)
    assert err <= RTOL, f"{what}: relative error {err:.2e} > {RTOL:.0e}"


@functools.cache
def converted(name):
    """(fixture arrays, model, params) for one CompressAI fixture."""
    path = FIXTURES / f"{name}.npz"
    with np.load(path) as f:
        data = {k: f[k] for k in f.files if not k.startswith("state_dict/")}
    sd = convert.load_checkpoint(path)
    n, m = convert.infer_widths(sd, name)
    params = convert.convert_state_dict(sd, name)
    model = get_model(convert.resolve_model_name(name), N=n, M=m)
    return data, model, jax.tree_util.tree_map(jnp.asarray, params)


def entropy_params(m, x):
    """Gaussian parameters of every latent, as CompressAI's forward() computes them."""
    y, z = m.analysis(x)
    z_hat, _ = m.entropy_bottleneck(z, training=False)
    hyper = m.hyper_synthesis(z_hat)
    if m.cfg.context == "none":
        return y, m.entropy_params(hyper)
    if m.cfg.context == "serial":  # CompressAI: context of round(y), in parallel
        return y, m.entropy_params(hyper, m.context(jnp.round(y)))
    from jaxlic.layers.context import anchor_mask

    p_anchor = m.latent.schedule.pass_params(m, 0, hyper)
    y_anchor = (jnp.round(y - p_anchor["means"]) + p_anchor["means"]) * anchor_mask(y.shape[1], y.shape[2])
    return y, m.latent.schedule.pass_params(m, 1, hyper, y_anchor)  # anchors keep their zero-context params


@functools.cache
def run(name):
    """jaxlic's forward_eval outputs and entropy parameters on the fixture's image (numpy)."""
    data, model, params = converted(name)
    x = jnp.asarray(data["x_uint8"].astype(np.float32) / 255.0)

    def both(m, x):
        return m.forward_eval(x), entropy_params(m, x)

    # one jit: a single compilation is several times faster than eager per-op dispatch
    out = jax.jit(lambda p, x: model.apply({"params": p}, x, method=both))(params, x)
    return jax.tree_util.tree_map(np.asarray, out)


@pytest.mark.parametrize("name", MODELS)
def test_forward_eval_matches_compressai_forward(name):
    data, _, _ = converted(name)
    out, _ = run(name)
    for key in ("y", "z", "z_hat", "y_hat", "x_hat"):
        assert_close(out[key], nhwc(data[key]), key)
    # the quantized latents are the same integers (plus the same means), not just close
    np.testing.assert_allclose(out["y_hat"], nhwc(data["y_hat"]), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out["z_hat"], nhwc(data["z_hat"]), rtol=0, atol=1e-4)
    assert_close(out["likelihoods"]["z"], nhwc(data["likelihoods_z"]), "likelihoods z")


@pytest.mark.parametrize("name", MODELS)
def test_entropy_parameters_and_y_likelihoods_match_compressai(name):
    data, _, _ = converted(name)
    _, (y, p) = run(name)
    assert_close(p["scales"], nhwc(data["scales_hat"]), "scales")
    means = p.get("means", np.zeros_like(y))
    if "means_hat" in data:
        assert_close(means, nhwc(data["means_hat"]), "means")
    # CompressAI's GaussianConditional: likelihood of round(y - mu) + mu
    lik = gaussian_likelihood(jnp.round(y - means) + means, means, p["scales"])
    assert_close(lik, nhwc(data["likelihoods_y"]), "likelihoods y")


@pytest.mark.parametrize("name", MODELS)
def test_forward_eval_y_likelihoods_match_compressai(name):
    data, _, _ = converted(name)
    assert_close(run(name)[0]["likelihoods"]["y"], nhwc(data["likelihoods_y"]), "likelihoods y")


@pytest.mark.parametrize("name", MODELS)
def test_decompress_matches_compressai_decompress(name):
    from jaxlic.models.codec import Codec

    data, model, params = converted(name)
    codec = Codec(model, {"params": params}, quality=1)
    stream = codec.compress(data["x_uint8"][0])
    x_hat, (h, w) = codec.decompress_float(stream)
    assert (h, w) == data["x_uint8"].shape[1:3]
    assert_close(np.clip(x_hat, 0.0, 1.0), nhwc(data["dec_x_hat"]), "decompressed x_hat")
    # a different range coder and container, but the same symbols under the same model:
    # within 5% + 32 bytes of CompressAI's stream
    theirs = int(data["nbytes_y"] + data["nbytes_z"])
    assert abs(len(stream) - theirs) <= 0.05 * theirs + 32, (len(stream), theirs)
