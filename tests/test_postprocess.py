"""Tests for jaxlic.layers.postprocess.PostProcess."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.layers.flops import flops
from jaxlic.layers.postprocess import PostProcess
from jaxlic.layers.subpixel import depth_to_space as _depth_to_space

# --- Cost reference: Cheng2020 synthesis transform g_s -------------------------------------
# A stand-in with exactly the layer shapes of CompressAI's Cheng2020Anchor g_s, built from plain
# convolutions so this test does not depend on jaxlic's residual/GDN/subpixel modules. It is
# only used for its FLOP count, never run. The Anchor variant (no attention blocks) is the
# cheaper of the two Cheng2020 g_s, which makes the <= 25% bound the stricter one.


def _conv3x3(features, name):
    return nn.Conv(features, (3, 3), padding="SAME", name=name)


class _RefResidualBlock(nn.Module):
    """ResidualBlock(N, N): conv3x3, leaky relu, conv3x3, leaky relu, + identity."""

    n: int

    @nn.compact
    def __call__(self, x):
        out = nn.leaky_relu(_conv3x3(self.n, "conv1")(x), 0.01)
        out = nn.leaky_relu(_conv3x3(self.n, "conv2")(out), 0.01)
        return x + out


class _RefIGDN(nn.Module):
    """Same cost as CompressAI's IGDN: x * sqrt(beta + conv1x1(x^2))."""

    n: int

    @nn.compact
    def __call__(self, x):
        norm = nn.Conv(self.n, (1, 1), name="gamma")(x * x)
        return x * jnp.sqrt(jnp.abs(norm) + 1.0)


class _RefResidualBlockUpsample(nn.Module):
    """ResidualBlockUpsample(N, N, 2): subpel_conv3x3, leaky relu, conv3x3, IGDN, + subpel skip."""

    n: int

    @nn.compact
    def __call__(self, x):
        out = _depth_to_space(_conv3x3(4 * self.n, "subpel_conv")(x), 2)
        out = nn.leaky_relu(out, 0.01)
        out = _RefIGDN(self.n, name="igdn")(_conv3x3(self.n, "conv")(out))
        return out + _depth_to_space(_conv3x3(4 * self.n, "upsample")(x), 2)


class _RefChengSynthesis(nn.Module):
    """Cheng2020Anchor.g_s: [B, H/16, W/16, N] -> [B, H, W, 3]."""

    n: int

    @nn.compact
    def __call__(self, y):
        x = y
        for i in range(3):
            x = _RefResidualBlock(self.n, name=f"res_{i}")(x)
            x = _RefResidualBlockUpsample(self.n, name=f"up_{i}")(x)
        x = _RefResidualBlock(self.n, name="res_3")(x)
        return _depth_to_space(_conv3x3(3 * 4, "subpel_out")(x), 2)


# --- tests -----------------------------------------------------------------------------------


def test_reference_synthesis_has_cheng_output_shape():
    y = jax.ShapeDtypeStruct((1, 512 // 16, 768 // 16, 128), jnp.float32)
    variables = jax.eval_shape(_RefChengSynthesis(128).init, jax.random.key(0), y)
    out = jax.eval_shape(_RefChengSynthesis(128).apply, variables, y)
    assert out.shape == (1, 512, 768, 3)


@pytest.mark.parametrize("n", [128, 192])
def test_costs_at_most_a_quarter_of_cheng_synthesis(n):
    h, w = 512, 768
    g_s = flops(_RefChengSynthesis(n), jax.ShapeDtypeStruct((1, h // 16, w // 16, n), jnp.float32))
    post = flops(PostProcess(), jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    print(f"N={n}: g_s {g_s / 1e9:.1f} GFLOP, PostProcess {post / 1e9:.2f} GFLOP, ratio {post / g_s:.3f}")
    assert post <= 0.25 * g_s


@pytest.mark.parametrize("hw", [(16, 24), (9, 7)])
def test_is_identity_at_init_and_preserves_shape(hw):
    module = PostProcess(features=8, num_blocks=2)
    x = jax.random.uniform(jax.random.key(0), (2, *hw, 3))
    variables = module.init(jax.random.key(1), x)
    y = module.apply(variables, x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


def test_gradients_reach_the_zero_initialised_tail():
    # At init only the tail receives a gradient (everything upstream is multiplied by its zero
    # kernel); that gradient must be nonzero, or the module could never leave the identity.
    module = PostProcess(features=8, num_blocks=2)
    x = jax.random.uniform(jax.random.key(0), (1, 8, 8, 3))
    target = jax.random.uniform(jax.random.key(1), x.shape)
    params = module.init(jax.random.key(2), x)["params"]
    grads = jax.grad(lambda p: jnp.mean((module.apply({"params": p}, x) - target) ** 2))(params)
    assert np.any(grads["tail"]["kernel"] != 0) and np.any(grads["tail"]["bias"] != 0)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
