"""SubpixelDeconv / deconv_kernel_to_subpixel reproduce PyTorch's ConvTranspose2d exactly."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.layers import deconv as dc


def conv_transpose2d_reference(x, w, b, stride, padding, output_padding):
    """Textbook definition of torch.nn.functional.conv_transpose2d, NCHW, float64 numpy."""
    n, cin, h, wd = x.shape
    _, cout, k, _ = w.shape
    s, p = stride, padding
    full = np.zeros((n, cout, (h - 1) * s + k + output_padding, (wd - 1) * s + k + output_padding))
    for i, j in itertools.product(range(k), range(k)):
        # every input pixel (y, x) scatters w[:, :, i, j] to (y*s + i, x*s + j) before cropping p
        full[:, :, i : i + (h - 1) * s + 1 : s, j : j + (wd - 1) * s + 1 : s] += np.einsum(
            "nchw,co->nohw", x, w[:, :, i, j]
        )
    hout = (h - 1) * s - 2 * p + k + output_padding
    wout = (wd - 1) * s - 2 * p + k + output_padding
    return full[:, :, p : p + hout, p : p + wout] + b[None, :, None, None]


def run_subpixel(x_nchw, w, b, stride, padding, output_padding):
    kernel, g = dc.deconv_kernel_to_subpixel(w, stride, padding, output_padding)
    x = jnp.asarray(x_nchw.transpose(0, 2, 3, 1))
    y = jax.lax.conv_general_dilated(
        x, jnp.asarray(kernel), (1, 1), (g.padding, g.padding), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    y = dc.depth_to_space(y, stride)
    if g.crop:
        y = y[:, : y.shape[1] - g.crop, : y.shape[2] - g.crop]
    return np.asarray(y + b).transpose(0, 3, 1, 2)


def test_depth_to_space_uses_pixelshuffle_channel_order():
    r, c = 2, 3
    x = np.arange(1 * 2 * 2 * c * r * r, dtype=np.float32).reshape(1, 2, 2, c * r * r)
    y = np.asarray(dc.depth_to_space(jnp.asarray(x), r))
    for h, w, ch, i, j in itertools.product(range(2), range(2), range(c), range(r), range(r)):
        assert y[0, h * r + i, w * r + j, ch] == x[0, h, w, ch * r * r + i * r + j]
    np.testing.assert_array_equal(np.asarray(dc.space_to_depth(jnp.asarray(y), r)), x)


def test_compressai_deconv_geometry_is_3x3_same():
    g = dc.subpixel_geometry(5, 2, 2, 1)
    assert (g.kernel_size, g.padding, g.crop) == (3, (1, 1), 0)
    mask = dc.subpixel_mask(5, 2, 2, 1)
    assert mask.shape == (3, 3, 1, 4) and mask.sum() == 25  # every torch tap used exactly once


@pytest.mark.parametrize(
    "k,s,p,op",
    [
        (5, 2, 2, 1),
        (3, 2, 1, 1),
        (4, 2, 1, 0),
        (5, 2, 0, 0),
        (3, 3, 1, 2),
        (2, 2, 0, 0),
        (5, 2, 2, 0),
        (1, 2, 0, 1),
    ],
)
def test_subpixel_matches_transposed_conv_definition(k, s, p, op):
    rng = np.random.default_rng(k * 100 + s * 10 + p + op)
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((3, 4, k, k))
    b = rng.standard_normal(4)
    ref = conv_transpose2d_reference(x, w, b, s, p, op)
    got = run_subpixel(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), s, p, op)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_kernel_round_trip_to_torch_layout():
    w = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    kernel, _ = dc.deconv_kernel_to_subpixel(w, 2, 2, 1)
    np.testing.assert_array_equal(dc.subpixel_kernel_to_deconv(kernel, 2, 2, 1, kernel_size=5), w)


def test_subpixel_deconv_module_imports_torch_weights_exactly():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((3, 6, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    mod = dc.SubpixelDeconv(features=6)
    params = mod.init(jax.random.key(0), jnp.zeros((1, 4, 5, 3)))["params"]
    assert params["conv"]["kernel"].shape == (3, 3, 3, 24) and params["bias"].shape == (6,)
    kernel, _ = dc.deconv_kernel_to_subpixel(w, 2, 2, 1)
    y = mod.apply({"params": {"conv": {"kernel": kernel}, "bias": b}}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert y.shape == (1, 8, 10, 6)
    ref = conv_transpose2d_reference(x.astype(np.float64), w, b, 2, 2, 1)
    np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)


def test_exact_mode_masks_taps_a_transposed_conv_lacks():
    mod = dc.SubpixelDeconv(features=2)
    x = jnp.ones((1, 4, 4, 3))
    params = mod.init(jax.random.key(0), x)["params"]
    grads = jax.grad(lambda p: mod.apply({"params": p}, x).sum())(params)
    mask = np.tile(dc.subpixel_mask(5, 2, 2, 1), (1, 1, 1, 2))
    g = np.abs(np.asarray(grads["conv"]["kernel"])).sum(axis=2, keepdims=True)
    assert np.all(g[mask == 0] == 0) and np.all(g[mask == 1] > 0)


@pytest.mark.parametrize("k,s,p,op", [(5, 2, 2, 1), (3, 2, 1, 0), (4, 2, 1, 0)])
def test_subpixel_matches_torch_conv_transpose2d(k, s, p, op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 5, k, k)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x),
            torch.from_numpy(w),
            torch.from_numpy(b),
            stride=s,
            padding=p,
            output_padding=op,
        ).numpy()
    np.testing.assert_allclose(run_subpixel(x, w, b, s, p, op), ref, rtol=1e-5, atol=1e-5)
