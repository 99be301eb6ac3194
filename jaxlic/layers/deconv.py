"""Transposed convolution as an exact sub-pixel convolution.

A strided transposed convolution (PyTorch ``ConvTranspose2d``) is the same linear map as a
regular stride-1 convolution with ``s*s*C_out`` output channels followed by a depth-to-space
shuffle (Shi et al., 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network"; Shi et al., 2016, "Is the deconvolution layer the same
as a convolutional layer?"). Every output phase ``(a, b)`` (output row ``s*m + a``, column
``s*n + b``) only sees the kernel taps ``w[:, :, i, j]`` with ``i = (a + p) mod s`` (mod ``s``),
so the taps can be regrouped into one small kernel per phase.

We use the sub-pixel form because it avoids the strided scatter (zeros inserted between input
pixels) of a transposed convolution and because ``depth_to_space`` in jaxlic follows PyTorch's
``PixelShuffle`` channel order (``c*r*r + i*r + j``), so CompressAI's ``deconv`` layers
(``ConvTranspose2d(k=5, s=2, p=2, output_padding=1)``, Ballé et al. 2018, Minnen et al. 2018)
import exactly via :func:`deconv_kernel_to_subpixel`.

Derivation, one axis. PyTorch defines
``out[o, Y] = b[o] + sum_{c,h,i : Y = h*s + i - p} x[c, h] * w[c, o, i]``
with ``H_out = (H - 1)*s - 2p + k + op``. Write ``Y = s*m + a`` and ``a + p = s*q_a + r_a``
(``0 <= r_a < s``); then ``i = s*t + r_a`` and ``h = m + q_a - t`` for ``t >= 0`` with
``s*t + r_a < k``. So phase ``a`` is a correlation of ``x`` with taps at input offsets
``d = q_a - t``; across phases the offsets span ``[d_min, d_max]``, which is the sub-pixel
kernel (size ``d_max - d_min + 1``, padding ``(-d_min, d_max + extra)``, ``extra`` chosen so the
conv yields ``ceil(H_out / s)`` rows, surplus rows cropped after the shuffle). For CompressAI's
``k=5, s=2, p=2, op=1`` this is a 3x3 kernel with SAME padding and no crop; 11 of its 36 taps per
``(c_in, c_out)`` pair are structurally zero (the odd phases have two taps, not three).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxlic.layers import fastconv
from jaxlic.layers.subpixel import depth_to_space, space_to_depth

__all__ = [
    "SubpixelGeometry",
    "SubpixelDeconv",
    "deconv_kernel_to_subpixel",
    "depth_to_space",
    "space_to_depth",
    "subpixel_geometry",
    "subpixel_kernel_to_deconv",
    "subpixel_mask",
]


@dataclasses.dataclass(frozen=True)
class SubpixelGeometry:
    """Static shape data of the sub-pixel form of a square ``ConvTranspose2d``.

    Attributes:
      kernel_size: side of the sub-pixel kernel (3 for ``k=5, s=2``).
      padding: ``(lo, hi)`` padding of the stride-1 conv, the same for both spatial axes
        (may be negative, meaning a crop of the input).
      crop: rows/columns to drop at the bottom/right after ``depth_to_space``.
      taps: ``taps[a]`` = list of ``(u, i)``: sub-pixel kernel row ``u`` takes the torch
        kernel row ``i`` for output phase ``a``.
    """

    kernel_size: int
    padding: tuple[int, int]
    crop: int
    taps: tuple[tuple[tuple[int, int], ...], ...]


def subpixel_geometry(
    kernel_size: int, stride: int, padding: int, output_padding: int = 0
) -> SubpixelGeometry:
    """Geometry of the sub-pixel conv equivalent to ``ConvTranspose2d(k, s, p, op)``."""
    k, s, p, op = kernel_size, stride, padding, output_padding
    if k < 1 or s < 1 or p < 0 or not 0 <= op < max(s, 1):
        raise ValueError(f"unsupported transposed conv k={k} s={s} p={p} output_padding={op}")
    phase_offsets = []  # per phase a: list of (d, i)
    for a in range(s):
        q, r = divmod(a + p, s)
        phase_offsets.append([(q - t, s * t + r) for t in range(0, (k - r + s - 1) // s)])
    ds = [d for ph in phase_offsets for d, _ in ph]
    if not ds:
        raise ValueError(f"transposed conv k={k} s={s} has an output phase without taps")
    d_min, d_max = min(ds), max(ds)
    extra_len = k + op - 2 * p - s  # H_out = s*H + extra_len
    extra_rows = -((-extra_len) // s)  # ceil(extra_len / s): conv yields H + extra_rows rows
    crop = s * extra_rows - extra_len
    taps = tuple(tuple((d - d_min, i) for d, i in ph) for ph in phase_offsets)
    return SubpixelGeometry(
        kernel_size=d_max - d_min + 1,
        padding=(-d_min, d_max + extra_rows),
        crop=crop,
        taps=taps,
    )


def deconv_kernel_to_subpixel(
    w_torch, stride: int, padding: int, output_padding: int = 0
) -> tuple[np.ndarray, SubpixelGeometry]:
    """Rearrange a PyTorch ``ConvTranspose2d`` weight into a sub-pixel conv kernel.

    Args:
      w_torch: ``[C_in, C_out, k, k]`` transposed-conv weight (numpy or anything array-like).
      stride, padding, output_padding: the ``ConvTranspose2d`` arguments.

    Returns:
      ``(kernel, geometry)``: ``kernel`` is ``[kk, kk, C_in, C_out*s*s]`` (HWIO, output channel
      ``o*s*s + a*s + b`` = output phase ``(a, b)`` of channel ``o``), to be used as
      ``conv(x, kernel, padding=[geometry.padding]*2) -> depth_to_space(s) -> crop``; the bias
      of the transposed conv is added after ``depth_to_space`` unchanged.
    """
    w = np.asarray(w_torch)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"expected a square [C_in, C_out, k, k] kernel, got shape {w.shape}")
    cin, cout, k, _ = w.shape
    s = stride
    g = subpixel_geometry(k, s, padding, output_padding)
    kk = g.kernel_size
    out = np.zeros((kk, kk, cin, cout, s, s), dtype=w.dtype)
    for a in range(s):
        for u, i in g.taps[a]:
            for b in range(s):
                for v, j in g.taps[b]:
                    out[u, v, :, :, a, b] = w[:, :, i, j]
    return out.reshape(kk, kk, cin, cout * s * s), g


def subpixel_kernel_to_deconv(
    kernel, stride: int, padding: int, output_padding: int = 0, kernel_size: int = 5
) -> np.ndarray:
    """Inverse of :func:`deconv_kernel_to_subpixel` (taps outside the mask are ignored).

    Returns the ``[C_in, C_out, k, k]`` PyTorch weight, e.g. to export a trained model.
    """
    kern = np.asarray(kernel)
    s, k = stride, kernel_size
    g = subpixel_geometry(k, s, padding, output_padding)
    kk, _, cin, cs2 = kern.shape
    if kk != g.kernel_size or cs2 % (s * s):
        raise ValueError(f"kernel shape {kern.shape} does not fit k={k} s={s}")
    kern = kern.reshape(kk, kk, cin, cs2 // (s * s), s, s)
    w = np.zeros((cin, cs2 // (s * s), k, k), dtype=kern.dtype)
    for a in range(s):
        for u, i in g.taps[a]:
            for b in range(s):
                for v, j in g.taps[b]:
                    w[:, :, i, j] = kern[u, v, :, :, a, b]
    return w


def subpixel_mask(kernel_size: int, stride: int, padding: int, output_padding: int = 0) -> np.ndarray:
    """``[kk, kk, 1, s*s]`` 0/1 mask of the taps a transposed conv can reach (broadcast per C_out).

    Output channel ``o*s*s + a*s + b`` uses mask column ``a*s + b``: tile it ``C_out`` times.
    """
    ones = np.ones((1, 1, kernel_size, kernel_size), np.float32)
    m, _ = deconv_kernel_to_subpixel(ones, stride, padding, output_padding)
    return m


class _PhaseConv(nn.Module):
    """Stride-1 conv whose kernel is restricted to the taps of a transposed conv."""

    features: int
    kernel_size: int
    stride: int
    padding: int
    output_padding: int
    exact: bool
    kernel_init: Callable
    precision: jax.lax.Precision | str | None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.stride
        g = subpixel_geometry(self.kernel_size, s, self.padding, self.output_padding)
        cin = x.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (g.kernel_size, g.kernel_size, cin, self.features * s * s)
        )
        kernel = kernel.astype(x.dtype)
        if self.exact:
            mask = subpixel_mask(self.kernel_size, s, self.padding, self.output_padding)
            kernel = kernel * jnp.asarray(np.tile(mask, (1, 1, 1, self.features)), x.dtype)
        return fastconv.conv_general_dilated(
            x,
            kernel,
            window_strides=(1, 1),
            padding=(g.padding, g.padding),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=self.precision,
        )


def _deconv_init(kernel_size: int, stride: int) -> Callable:
    # Each output of the transposed conv sums about C_in * (k/s)^2 taps: scale for that fan-in.
    def init(key, shape, dtype=jnp.float32):
        fan_in = shape[2] * (kernel_size / stride) ** 2
        return jax.random.normal(key, shape, dtype) * math.sqrt(1.0 / (3.0 * fan_in))  # torch-like scale

    return init


class SubpixelDeconv(nn.Module):
    """``ConvTranspose2d(C_in, features, kernel_size, stride, padding=k//2, output_padding=s-1)``.

    Computed as conv (``ceil(k/s)`` kernel; 3x3 SAME for ``k=5, s=2``) -> ``depth_to_space`` ->
    bias, which is exactly CompressAI's ``deconv(in, out, kernel_size, stride)``; output is
    ``[B, H*s, W*s, features]``.

    Parameters: ``conv/kernel`` ``[kk, kk, C_in, features*s*s]`` (see
    :func:`deconv_kernel_to_subpixel`) and ``bias`` ``[features]``. With ``exact=True`` (default)
    the taps that no transposed conv has are masked out in the forward pass (and so get zero
    gradient), so every trained kernel maps back to a PyTorch ``ConvTranspose2d``.
    """

    features: int
    kernel_size: int = 5
    stride: int = 2
    padding: int | None = None  # default kernel_size // 2 (CompressAI)
    output_padding: int | None = None  # default stride - 1 (CompressAI)
    exact: bool = True
    use_bias: bool = True
    kernel_init: Callable | None = None
    bias_init: Callable = nn.initializers.zeros
    precision: jax.lax.Precision | str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        p = k // 2 if self.padding is None else self.padding
        op = s - 1 if self.output_padding is None else self.output_padding
        g = subpixel_geometry(k, s, p, op)
        y = _PhaseConv(
            features=self.features,
            kernel_size=k,
            stride=s,
            padding=p,
            output_padding=op,
            exact=self.exact,
            kernel_init=self.kernel_init or _deconv_init(k, s),
            precision=self.precision,
            name="conv",
        )(x)
        y = depth_to_space(y, s)
        if g.crop:
            y = y[:, : y.shape[1] - g.crop, : y.shape[2] - g.crop, :]
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,))
            y = y + bias.astype(y.dtype)
        return y
