"""Sub-pixel (pixel-shuffle) up-sampling, the fast alternative to transposed convolutions.

Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network". On CPU, XLA runs a conv + depth-to-space several times faster than a
`ConvTranspose` of the same size, so every up-sampling in jaxlic is built from these.

Channel order follows PyTorch's `PixelShuffle` (input channel `c * r * r + i * r + j` goes to
output channel `c`, sub-position `(i, j)`), so CompressAI's `subpel_conv3x3` weights import by a
plain layout transpose.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlic.layers.fastconv import conv_general_dilated

# PyTorch's default conv init (kaiming_uniform with a=sqrt(5): U(+-1/sqrt(fan_in))). Flax's
# lecun_normal is sqrt(3) larger per layer, which makes the GDN/IGDN transforms of an untrained
# model blow up (IGDN grows quadratically), so training would start from PSNR < 0 dB.
TORCH_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def conv(features: int, kernel_size: int = 3, stride: int = 1, name: str | None = None, **kw) -> nn.Conv:
    """A 2-D convolution padded like PyTorch (`kernel_size // 2` on every side).

    Flax's "SAME" padding puts the odd pixel of a strided conv at the end; PyTorch pads
    symmetrically. We pad symmetrically so that CompressAI weights give identical outputs.
    """
    p = kernel_size // 2
    kw.setdefault("kernel_init", TORCH_INIT)
    kw.setdefault("conv_general_dilated", conv_general_dilated)  # fast weight gradient on CPU
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((p, p), (p, p)),
        name=name,
        **kw,
    )


def depth_to_space(x: jnp.ndarray, r: int) -> jnp.ndarray:
    """[B, H, W, C*r*r] -> [B, H*r, W*r, C] in PyTorch PixelShuffle channel order."""
    b, h, w, c = x.shape
    co = c // (r * r)
    x = x.reshape(b, h, w, co, r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(b, h * r, w * r, co)


def space_to_depth(x: jnp.ndarray, r: int) -> jnp.ndarray:
    """[B, H*r, W*r, C] -> [B, H, W, C*r*r]; the exact inverse of `depth_to_space`."""
    b, hr, wr, c = x.shape
    h, w = hr // r, wr // r
    x = x.reshape(b, h, r, w, r, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(b, h, w, c * r * r)


def pad_to_multiple(x: jnp.ndarray, r: int) -> tuple[jnp.ndarray, int, int]:
    """Edge-pads H and W of [B, H, W, C] up to multiples of `r`; returns (padded, pad_h, pad_w).

    Edge (replicate) rather than zero padding, so that a border row does not look like an image
    edge to the convolutions that follow; the caller crops the padding away again.
    """
    _, h, w, _ = x.shape
    ph, pw = (-h) % r, (-w) % r
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return x, ph, pw


class SubpelConv(nn.Module):
    """3x3 conv to `features * r^2` channels followed by `depth_to_space(r)`.

    Mirrors CompressAI's `subpel_conv3x3` (`Sequential(Conv2d(in, out*r^2, 3, padding=1),
    PixelShuffle(r))`); the inner conv is named `conv`.
    """

    features: int
    r: int = 2
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x):
        x = conv(self.features * self.r * self.r, self.kernel_size, name="conv")(x)
        return depth_to_space(x, self.r)
