"""Residual attention blocks for the analysis and synthesis transforms.

Two modules, both ``[B, H, W, N] -> [B, H, W, N]`` (NHWC) and both of the residual attention
form of Wang et al. (2017), "Residual Attention Network for Image Classification" (CVPR):
``out = x + trunk(x) * sigmoid(mask(x))``.

* :class:`AttentionBlock`: the *simplified* attention module of Cheng, Sun, Takeuchi and Katto
  (2020), "Learned Image Compression with Discretized Gaussian Mixture Likelihoods and Attention
  Modules" (CVPR), laid out exactly like CompressAI's ``compressai.layers.AttentionBlock`` so
  that its weights import by renaming and transposing only.
* :class:`FDRAM`: our "Fast Deep Residual Attention Module", the same residual attention idea
  with the mask branch computed at half resolution. It sees a receptive field about twice as
  wide as Cheng's block and costs under half its FLOPs at equal width.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlic.layers.subpixel import conv, depth_to_space, pad_to_multiple, space_to_depth

__all__ = ["AttentionBlock", "FDRAM"]


def _conv(features: int, kernel_size: int, name: str, **kwargs) -> nn.Conv:
    return conv(features, kernel_size, name=name, **kwargs)


class _BottleneckUnit(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))``, optionally followed by a ReLU.

    With ``final_relu=True`` this is CompressAI's ``AttentionBlock.ResidualUnit``. The
    submodules are named ``conv_0``, ``conv_2``, ``conv_4`` after their indices in that unit's
    ``nn.Sequential`` (the ReLUs sit at 1 and 3), so state-dict keys map one to one.

    Attributes:
      features: input and output channels.
      hidden: channels of the 3x3 convolution.
      final_relu: apply a ReLU after the residual sum (Cheng/CompressAI) or not.
    """

    features: int
    hidden: int
    final_relu: bool = True

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out = nn.relu(_conv(self.hidden, 1, "conv_0")(x))
        out = nn.relu(_conv(self.hidden, 3, "conv_2")(out))
        out = x + _conv(self.features, 1, "conv_4")(out)
        return nn.relu(out) if self.final_relu else out


class AttentionBlock(nn.Module):
    """Cheng et al. (2020) simplified attention module, CompressAI-compatible.

    ``out = x + a(x) * sigmoid(b(x))`` where the trunk ``a`` is three residual units and the
    mask ``b`` is three residual units followed by a 1x1 convolution. A residual unit is
    ``relu(x + conv1x1(relu(conv3x3(relu(conv1x1(x))))))`` with widths ``N -> N/2 -> N/2 -> N``.

    Parameter names and CompressAI state-dict keys (``i`` in 0..2, ``j`` in {0, 2, 4})::

        conv_a_{i}/conv_{j}/kernel  <-  conv_a.{i}.conv.{j}.weight  (transpose 2, 3, 1, 0)
        conv_a_{i}/conv_{j}/bias    <-  conv_a.{i}.conv.{j}.bias
        conv_b_{i}/conv_{j}/kernel  <-  conv_b.{i}.conv.{j}.weight  (transpose 2, 3, 1, 0)
        conv_b_{i}/conv_{j}/bias    <-  conv_b.{i}.conv.{j}.bias
        conv_b_3/kernel             <-  conv_b.3.weight             (transpose 2, 3, 1, 0)
        conv_b_3/bias               <-  conv_b.3.bias

    Kernel shapes: ``conv_0`` ``[1, 1, N, N/2]``, ``conv_2`` ``[3, 3, N/2, N/2]``, ``conv_4``
    ``[1, 1, N/2, N]``, ``conv_b_3`` ``[1, 1, N, N]``; PyTorch's ``[out, in, kh, kw]`` becomes
    flax's ``[kh, kw, in, out]``.

    Attributes:
      N: number of channels.
    """

    N: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Applies the block.

        Args:
          x: ``[B, H, W, N]`` features.

        Returns:
          ``[B, H, W, N]`` features.
        """
        a = x
        for i in range(3):
            a = _BottleneckUnit(self.N, self.N // 2, final_relu=True, name=f"conv_a_{i}")(a)
        b = x
        for i in range(3):
            b = _BottleneckUnit(self.N, self.N // 2, final_relu=True, name=f"conv_b_{i}")(b)
        b = _conv(self.N, 1, "conv_b_3")(b)
        return x + a * nn.sigmoid(b)


class FDRAM(nn.Module):
    """Fast Deep Residual Attention Module: residual attention with a half-resolution mask.

    ``out = x + trunk(x) * sigmoid(mask(x))`` (Wang et al. 2017; Cheng et al. 2020), with

    * trunk: ``trunk_units`` bottleneck residual units at full resolution
      (``x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))``, widths ``N -> N/2 -> N/2 -> N``, no
      ReLU after the sum, so the trunk passes signed latents through unclipped);
    * mask: pixel-unshuffle by 2 and a 1x1 convolution (together a non-overlapping 2x2 stride-2
      convolution) down to ``mask_features`` channels at half resolution, ``mask_units``
      bottleneck residual units there, then a 1x1 convolution to ``4 * N`` channels and a
      pixel shuffle back to ``[B, H, W, N]`` (a sub-pixel convolution, Shi et al. 2016).

    Why this shape. The mask only has to be a smooth, spatially-varying gate, so it is the
    branch that can afford to lose resolution: at half resolution each 3x3 convolution covers
    twice the distance at a quarter of the cost, so three mask units see 14 pixels
    (Cheng's mask: 7) while the whole mask costs ~1.6 N^2 multiply-adds per pixel against
    ~10 N^2 for Cheng's. The trunk carries the detail and stays at full resolution, two units
    instead of three. Per pixel: trunk 6.5 N^2 + mask 1.6 N^2 ~ 8.1 N^2 MACs against Cheng's
    20.5 N^2, i.e. ~40% of :class:`AttentionBlock` (tests pin <= 50% with XLA's own count).

    Initialisation: biases start at 0 (flax default; the trainer redraws them small, like
    PyTorch, see `jaxlic.models.init`), so at init ``sigmoid(mask)`` sits around 0.5, the gate
    is in its linear range and gradients reach both branches from the first step.

    Odd ``H`` or ``W``: the mask branch edge-pads to even size and crops after upsampling, so
    any size works; even sizes (the usual case, latents of multiple-of-64 images) take no
    padding.

    Attributes:
      N: number of channels.
      trunk_units: residual units in the full-resolution trunk.
      mask_units: residual units in the half-resolution mask branch.
      mask_features: mask width at half resolution (default ``N // 2``); its bottleneck
        units use ``mask_features // 2`` hidden channels.
    """

    N: int
    trunk_units: int = 2
    mask_units: int = 3
    mask_features: int | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Applies the block.

        Args:
          x: ``[B, H, W, N]`` features.

        Returns:
          ``[B, H, W, N]`` features.
        """
        _, h, w, _ = x.shape
        m = self.mask_features or self.N // 2

        trunk = x
        for i in range(self.trunk_units):
            trunk = _BottleneckUnit(self.N, self.N // 2, final_relu=False, name=f"trunk_{i}")(trunk)

        mask, _, _ = pad_to_multiple(x, 2)
        mask = _conv(m, 1, "mask_down")(space_to_depth(mask, 2))
        for i in range(self.mask_units):
            mask = _BottleneckUnit(m, m // 2, final_relu=False, name=f"mask_{i}")(mask)
        mask = depth_to_space(_conv(4 * self.N, 1, "mask_up")(mask), 2)[:, :h, :w, :]

        return x + trunk * nn.sigmoid(mask)
