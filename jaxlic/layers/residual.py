"""Residual blocks of Cheng et al. 2020's transforms.

Cheng, Sun, Takeuchi, Katto 2020, "Learned Image Compression with Discretized Gaussian Mixture
Likelihoods and Attention Modules". Submodule names mirror CompressAI's (`conv1`, `conv2`, `gdn`,
`skip`, `subpel_conv`, `conv`, `igdn`, `upsample`) so its weights import by name.
"""

from __future__ import annotations

import flax.linen as nn

from jaxlic.layers.gdn import GDN
from jaxlic.layers.subpixel import SubpelConv, conv


def leaky_relu(x):
    """Leaky ReLU with CompressAI's slope 0.01 (the one definition; the models import it)."""
    return nn.leaky_relu(x, 0.01)


class ResidualBlock(nn.Module):
    """conv3x3 -> LReLU -> conv3x3 -> LReLU, plus identity (1x1 conv if widths differ)."""

    features: int

    @nn.compact
    def __call__(self, x):
        out = leaky_relu(conv(self.features, 3, name="conv1")(x))
        out = leaky_relu(conv(self.features, 3, name="conv2")(out))
        identity = x if x.shape[-1] == self.features else conv(self.features, 1, name="skip")(x)
        return out + identity


class ResidualBlockWithStride(nn.Module):
    """Down-sampling residual block: strided conv3x3 -> LReLU -> conv3x3 -> GDN, plus strided 1x1 skip."""

    features: int
    stride: int = 2

    @nn.compact
    def __call__(self, x):
        out = leaky_relu(conv(self.features, 3, self.stride, name="conv1")(x))
        out = GDN(name="gdn")(conv(self.features, 3, name="conv2")(out))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = conv(self.features, 1, self.stride, name="skip")(x)
        return out + x


class ResidualBlockUpsample(nn.Module):
    """Up-sampling residual block: sub-pixel conv -> LReLU -> conv3x3 -> IGDN, plus sub-pixel skip."""

    features: int
    r: int = 2

    @nn.compact
    def __call__(self, x):
        out = leaky_relu(SubpelConv(self.features, self.r, name="subpel_conv")(x))
        out = GDN(inverse=True, name="igdn")(conv(self.features, 3, name="conv")(out))
        return out + SubpelConv(self.features, self.r, name="upsample")(x)
