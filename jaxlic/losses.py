"""Rate-distortion loss: loss = lambda * 255^2 * MSE + bpp (CompressAI's MSE objective)."""

from __future__ import annotations

import jax.numpy as jnp


def bits(likelihoods) -> jnp.ndarray:
    """Total information content -sum log2(p) of one likelihood array."""
    return -jnp.sum(jnp.log2(likelihoods))


def rd_loss(out: dict, x: jnp.ndarray, lmbda: float) -> dict:
    """Rate-distortion terms of a forward pass.

    Args:
      out: a model's forward output, `{"x_hat", "likelihoods": {"y", "z"}}`.
      x: the input batch [B, H, W, 3] in [0, 1].
      lmbda: the rate-distortion trade-off.
    Returns:
      dict with `loss`, `mse` (on the [0,1] scale), `bpp`, `bpp_y`, `bpp_z`, `psnr`.
    """
    num_pixels = x.shape[0] * x.shape[1] * x.shape[2]
    bpp_y = bits(out["likelihoods"]["y"]) / num_pixels
    bpp_z = bits(out["likelihoods"]["z"]) / num_pixels
    mse = jnp.mean(jnp.square(out["x_hat"] - x))
    bpp = bpp_y + bpp_z
    return {
        "loss": lmbda * 255.0**2 * mse + bpp,
        "mse": mse,
        "bpp": bpp,
        "bpp_y": bpp_y,
        "bpp_z": bpp_z,
        "psnr": -10.0 * jnp.log10(jnp.maximum(mse, 1e-10)),
    }
