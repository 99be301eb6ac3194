"""Tests for jaxlic.layers.attention: Cheng's AttentionBlock and FDRAM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.layers.attention import FDRAM, AttentionBlock
from jaxlic.layers.flops import flops
from jaxlic.layers.subpixel import depth_to_space as _depth_to_space
from jaxlic.layers.subpixel import space_to_depth as _space_to_depth


def random_params(module, x, seed=0):
    """Random parameters with the module's tree, drawn in numpy (lecun-normal scale).

    Tracing ``init`` with ``eval_shape`` and drawing host-side avoids compiling one
    truncated-normal kernel per parameter shape, which dominates eager ``init`` on CPU.
    """
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(seed)

    def draw(leaf):
        fan_in = int(np.prod(leaf.shape[:-1])) or 1
        return jnp.asarray(rng.standard_normal(leaf.shape, dtype=np.float32) / np.sqrt(fan_in))

    return jax.tree.map(draw, shapes)


@pytest.mark.parametrize("module", [AttentionBlock(16), FDRAM(16)], ids=["cheng", "fdram"])
@pytest.mark.parametrize("hw", [(8, 12), (7, 5)])
def test_preserves_shape_and_dtype(module, hw):
    x = jax.random.normal(jax.random.key(0), (2, *hw, 16))
    y = module.apply({"params": random_params(module, x)}, x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.all(np.isfinite(y))


def test_attention_block_param_tree_matches_compressai_layout():
    n = 16
    variables = jax.eval_shape(AttentionBlock(n).init, jax.random.key(0), jnp.zeros((1, 4, 4, n)))
    params = variables["params"]
    shapes = jax.tree.map(lambda a: a.shape, params)
    unit = {
        "conv_0": {"kernel": (1, 1, n, n // 2), "bias": (n // 2,)},
        "conv_2": {"kernel": (3, 3, n // 2, n // 2), "bias": (n // 2,)},
        "conv_4": {"kernel": (1, 1, n // 2, n), "bias": (n,)},
    }
    expected = {f"conv_{br}_{i}": unit for br in "ab" for i in range(3)}
    expected["conv_b_3"] = {"kernel": (1, 1, n, n), "bias": (n,)}
    assert shapes == expected


def test_attention_block_matches_reference_formula():
    # Independent re-statement of CompressAI's forward: x + a * sigmoid(b).
    n = 8
    x = jax.random.normal(jax.random.key(0), (1, 6, 6, n))
    params = random_params(AttentionBlock(n), x)

    def conv(p, v):
        return (
            jax.lax.conv_general_dilated(
                v, p["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            + p["bias"]
        )

    def unit(p, v):
        out = jax.nn.relu(conv(p["conv_0"], v))
        out = jax.nn.relu(conv(p["conv_2"], out))
        return jax.nn.relu(conv(p["conv_4"], out) + v)

    @jax.jit
    def reference(p, v):
        a, b = v, v
        for i in range(3):
            a = unit(p[f"conv_a_{i}"], a)
            b = unit(p[f"conv_b_{i}"], b)
        b = conv(p["conv_b_3"], b)
        return v + a * jax.nn.sigmoid(b)

    expected = reference(params, x)
    got = AttentionBlock(n).apply({"params": params}, x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_pixel_shuffle_uses_pytorch_channel_order_and_inverts():
    # PyTorch PixelShuffle: input channel c*r*r + i*r + j -> output (c, h*r+i, w*r+j).
    r, c = 2, 3
    x = jnp.arange(1 * 2 * 2 * c * r * r, dtype=jnp.float32).reshape(1, 2, 2, c * r * r)
    y = _depth_to_space(x, r)
    assert y.shape == (1, 4, 4, c)
    for h in range(2):
        for w in range(2):
            for ch in range(c):
                for i in range(r):
                    for j in range(r):
                        assert y[0, h * r + i, w * r + j, ch] == x[0, h, w, ch * r * r + i * r + j]
    np.testing.assert_array_equal(_space_to_depth(y, r), x)


@pytest.mark.parametrize("n", [128, 192])
def test_fdram_costs_at_most_half_of_cheng_attention(n):
    # The resolution where Cheng2020 places the block: latents of a 768x512 image.
    x = jax.ShapeDtypeStruct((1, 32, 48, n), jnp.float32)
    cheng, fdram = flops(AttentionBlock(n), x), flops(FDRAM(n), x)
    print(
        f"N={n}: AttentionBlock {cheng / 1e9:.3f} GFLOP, FDRAM {fdram / 1e9:.3f} GFLOP, "
        f"ratio {fdram / cheng:.3f}"
    )
    assert fdram <= 0.5 * cheng


def test_fdram_gradients_are_finite_and_reach_every_parameter():
    n = 16
    module = FDRAM(n)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, n))
    params = random_params(module, x)

    def loss(p, v):
        return jnp.sum(module.apply({"params": p}, v) ** 2)

    g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    assert np.all(np.isfinite(g_x)) and np.any(g_x != 0)
    for path, g in jax.tree_util.tree_leaves_with_path(g_params):
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path


def test_fdram_mask_sees_a_wider_field_than_cheng():
    # A perturbation at one pixel must change outputs farther away through FDRAM's half-res
    # mask than through Cheng's full-res branches (7x7 field, reach 3).
    n = 8
    x = jax.random.normal(jax.random.key(0), (1, 24, 24, n))
    dx = x.at[0, 12, 12, :].add(1.0)

    def reach(module):
        v = {"params": random_params(module, x)}
        diff = np.abs(np.asarray(module.apply(v, dx) - module.apply(v, x))).sum(-1)[0]
        rows, cols = np.nonzero(diff > 0)
        return max(np.abs(rows - 12).max(), np.abs(cols - 12).max())

    assert reach(AttentionBlock(n)) == 3
    assert reach(FDRAM(n)) > 3
