"""fastconv.conv_general_dilated: same values and gradients as XLA's conv, computed piecewise."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.layers import fastconv
from jaxlic.layers.subpixel import conv

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture
def small_pieces(monkeypatch):
    """Force the split on and make pieces tiny, so a few pixels already span many pieces."""
    monkeypatch.setenv("JAXLIC_CONV_WGRAD", "split")
    monkeypatch.setattr(fastconv, "TARGET_PIXELS", 48)
    monkeypatch.setattr(fastconv, "MIN_OUT_FEATURES", 1)


def _grads(fn, x, w):
    loss = lambda x, w: jnp.sum(jnp.sin(fn(x, w)) * jnp.arange(1.0, 1.0 + fn(x, w).shape[-1]))
    return jax.jit(jax.grad(loss, (0, 1)))(x, w)


@pytest.mark.parametrize(
    "shape,k,stride,padding",
    [
        ((3, 37, 29, 5), 3, 2, ((1, 1), (1, 1))),  # odd sizes, strided: bands end mid-image
        ((2, 21, 30, 4), 5, 2, ((2, 2), (2, 2))),
        ((4, 9, 8, 3), 1, 1, ((0, 0), (0, 0))),  # small maps: several images per piece
        ((2, 17, 16, 3), 3, 1, "VALID"),
        ((1, 12, 40, 2), 3, 1, ((2, 0), (0, 1))),  # asymmetric padding
    ],
)
def test_values_and_gradients_match_xla(small_pieces, shape, k, stride, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, shape[-1], 6)), jnp.float32)
    ours = lambda x, w: fastconv.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC)
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC)
    pads = ((0, 0), (0, 0)) if padding == "VALID" else padding
    assert fastconv.num_pieces(shape, w.shape, (stride, stride), pads) > 1
    np.testing.assert_array_equal(np.asarray(ours(x, w)), np.asarray(ref(x, w)))
    (gx, gw), (rx, rw) = _grads(ours, x, w), _grads(ref, x, w)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(rx), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gw), np.asarray(rw), rtol=2e-5, atol=2e-4)


def test_pieces_cover_every_output_pixel_once():
    assert fastconv._pieces(0, 8, 8) == [] and fastconv._pieces(2, 0, 8) == []
    for batch, h, w in [(8, 128, 128), (8, 64, 64), (6, 32, 32), (5, 7, 300), (3, 1, 1), (2, 45, 46)]:
        count = np.zeros((batch, h), int)
        for b0, b1, r0, r1 in fastconv._pieces(batch, h, w):
            count[b0:b1, r0:r1] += 1
            assert (b1 - b0) * (r1 - r0) * w <= max(fastconv.TARGET_PIXELS, w)
        assert (count == 1).all(), (batch, h, w)


def test_unsupported_arguments_fall_back_to_xla(small_pieces):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    kw = dict(dimension_numbers=NHWC, feature_group_count=2)
    ours = lambda w: jnp.sum(fastconv.conv_general_dilated(x, w, (1, 1), "SAME", **kw) ** 2)
    ref = lambda w: jnp.sum(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", **kw) ** 2)
    np.testing.assert_allclose(jax.grad(ours)(w), jax.grad(ref)(w), rtol=1e-6)


def test_flax_conv_uses_it_and_keeps_param_names(small_pieces):
    layer = conv(5, 3, 2)
    x = jnp.ones((2, 20, 20, 3))
    v = layer.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, v["params"]) == {"kernel": (3, 3, 3, 5), "bias": (5,)}
    ref = nn.Conv(5, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    loss = lambda m: lambda p: jnp.sum(m.apply({"params": p}, x * jnp.arange(20.0)[:, None, None]) ** 2)
    g, r = jax.grad(loss(layer))(v["params"]), jax.grad(loss(ref))(v["params"])
    np.testing.assert_allclose(g["kernel"], r["kernel"], rtol=1e-5)


def test_mode_switch(monkeypatch):
    monkeypatch.setenv("JAXLIC_CONV_WGRAD", "xla")
    assert not fastconv.split_enabled()
    monkeypatch.setenv("JAXLIC_CONV_WGRAD", "split")
    assert fastconv.split_enabled()
    monkeypatch.delenv("JAXLIC_CONV_WGRAD")
    assert fastconv.split_enabled() == (jax.default_backend() == "cpu")
    monkeypatch.setenv("JAXLIC_CONV_WGRAD", "fast")
    with pytest.raises(ValueError, match="JAXLIC_CONV_WGRAD"):
        fastconv.split_enabled()


def test_narrow_outputs_keep_xla_weight_gradient():
    # 128 -> 12 (the output conv of g_s): XLA's own weight gradient is faster there.
    assert fastconv.num_pieces((8, 128, 128, 128), (3, 3, 128, 12), (1, 1), ((1, 1), (1, 1))) == 1
    assert fastconv.num_pieces((8, 128, 128, 128), (3, 3, 128, 128), (1, 1), ((1, 1), (1, 1))) == 64
