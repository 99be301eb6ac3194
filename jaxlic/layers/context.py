"""Spatial context models: the serial masked convolution and the checkerboard convolution.

* Serial: Minnen, Ballé, Toderici 2018, "Joint Autoregressive and Hierarchical Priors for Learned
  Image Compression" — a 5x5 "type A" mask sees only the positions before the current one in
  raster order, so decoding must visit the latent positions one by one.
* Checkerboard: He, Zheng, Sun, Wang, Qin 2021, "Checkerboard Context Model for Efficient Learned
  Image Compression" — latents split into anchors (here `(i + j) % 2 == 0`, CompressAI's "even"
  parity) and non-anchors; the context of a non-anchor sees only anchors, so decoding is two
  parallel passes.

Both keep the full, unmasked `kernel` parameter ([k, k, in, out], like CompressAI's weight) and
multiply by the constant mask in the forward pass, so imported weights need no editing.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxlic.layers import fastconv
from jaxlic.layers.subpixel import TORCH_INIT


def serial_mask(k: int) -> np.ndarray:
    """[k, k] mask of a type-A causal conv: rows above the centre, and the centre row left of it."""
    m = np.zeros((k, k), np.float32)
    m[: k // 2, :] = 1
    m[k // 2, : k // 2] = 1
    return m


def checkerboard_mask(k: int) -> np.ndarray:
    """[k, k] mask that keeps the taps at an odd offset (i + j odd): the other parity class."""
    ii, jj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    return ((ii + jj) % 2 == 1).astype(np.float32)


#: Mask of each `MaskedConv.mask_type`: kernel size -> [k, k] mask.
MASKS = {"serial": serial_mask, "checkerboard": checkerboard_mask}


def anchor_mask(h: int, w: int, dtype=jnp.float32) -> jnp.ndarray:
    """[1, h, w, 1] with ones at anchor positions ((i + j) even).

    The one definition of the checkerboard's anchors: the model's passes and the host coder
    (`jaxlic.latent.schedules.Checkerboard`) both derive their positions from it.
    """
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return jnp.asarray(((ii + jj) % 2 == 0)[None, :, :, None], dtype)


class MaskedConv(nn.Module):
    """A k x k stride-1 conv whose kernel is multiplied by a fixed mask ("serial" or "checkerboard")."""

    features: int
    kernel_size: int = 5
    mask_type: str = "serial"

    def mask(self) -> np.ndarray:
        if self.mask_type not in MASKS:
            raise ValueError(f"unknown mask_type {self.mask_type!r}; expected one of {tuple(MASKS)}")
        return MASKS[self.mask_type](self.kernel_size)

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", TORCH_INIT, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        kernel = kernel * jnp.asarray(self.mask())[:, :, None, None]
        p = k // 2
        y = fastconv.conv_general_dilated(
            x, kernel.astype(x.dtype), (1, 1), ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return y + bias

    def at_patch(self, patch: jnp.ndarray) -> jnp.ndarray:
        """The conv's output at the centre of `patch` [B, k, k, in] -> [B, out].

        Used by the serial decoder, which needs one position at a time (call through
        `apply(..., method=...)` after the params exist).
        """
        params = self.variables["params"]
        kernel = params["kernel"] * jnp.asarray(self.mask())[:, :, None, None]
        return jnp.einsum("bhwi,hwio->bo", patch, kernel) + params["bias"]
