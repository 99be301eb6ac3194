"""Validation: estimated RD terms with rounding (`eval_step`), real range-coded bits (`_RealBpp`)
and the hyperprior's health (live z channels, z's share of the rate, the collapse warning).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlic.losses import rd_loss
from train.spec import ModelSpec, PyTree
from train.state import to_host

#: Below this share of the rate in z, the hyperprior is "collapsed" (see hyperprior_collapse_warning).
HYPERPRIOR_COLLAPSE_SHARE = 0.01


def eval_step(params: PyTree, image: jax.Array, *, spec: ModelSpec) -> dict:
    """Estimated RD terms of one batch with rounding (`forward_eval`).

    A variable-rate model is evaluated at its lowest, middle and highest rate points: the terms
    of point i as `<term>_q<i>`, and their means under the plain names (`loss` picks the best
    checkpoint).
    """
    if not spec.variable_rate:
        out = spec.module.apply({"params": params}, image, method="forward_eval")
        return {**rd_loss(out, image, spec.lmbda), **z_health(out)}
    metrics, points = {}, validation_points(len(spec.lambdas))
    for i in points:
        out = spec.module.apply({"params": params}, image, float(i), method="forward_eval")
        for k, v in {**rd_loss(out, image, spec.lambdas[i]), **z_health(out)}.items():
            metrics[f"{k}_q{i}"] = v
            metrics[k] = metrics.get(k, 0.0) + v / len(points)
    return metrics


def jit_eval_step(spec: ModelSpec, mesh: jax.sharding.Mesh, compiler_options: dict | None = None) -> Callable:
    """`eval_step` jitted, params and image replicated on `mesh`."""
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        functools.partial(eval_step, spec=spec),
        in_shardings=(replicated, replicated),
        out_shardings=replicated,
        compiler_options=compiler_options,
    )


def z_health(out: dict) -> dict:
    """How much the hyperprior is used: `live_z_channels`, the number of channels of z_hat that
    vary over the image (a collapsed hyperprior has a few; `evaluate` adds z's share of the rate)."""
    z_hat = out["z_hat"]
    live = z_hat.max(axis=(0, 1, 2)) > z_hat.min(axis=(0, 1, 2))
    return {"live_z_channels": jnp.sum(live.astype(jnp.float32))}


def validation_points(num_rates: int) -> list[int]:
    """The rate points a variable-rate model is validated at: lowest, middle, highest."""
    return sorted({0, (num_rates - 1) // 2, num_rates - 1})


def hyperprior_collapse_warning(metrics: dict) -> str | None:
    """A warning when z carries under 1% of the validation rate, else None.

    A share under 1% means the hyperprior is barely used: the anchors of the checkerboard are
    then coded from nearly fixed distributions. What it looked like in our runs, and what did
    not bring it back: docs/RESULTS.md, "The hyperprior collapse warning". `python -m
    eval.latent_usage` shows which channels are used.
    """
    bpp, bpp_z = metrics.get("bpp"), metrics.get("bpp_z")
    if not bpp or bpp_z is None or bpp_z >= HYPERPRIOR_COLLAPSE_SHARE * bpp:
        return None
    return (
        f"hyperprior collapse: z carries {bpp_z:.5f} of {bpp:.4f} bpp "
        f"({100 * bpp_z / bpp:.2f}% < {100 * HYPERPRIOR_COLLAPSE_SHARE:.0f}%); "
        "see python -m eval.latent_usage --weights ..."
    )


class _RealBpp:
    """Range-codes validation images through `jaxlic.models.codec.Codec` while it works."""

    def __init__(self, spec: ModelSpec, enabled: bool):
        self.spec = spec
        self.enabled = enabled and ":" not in spec.name

    def __call__(self, params: PyTree, images: list[np.ndarray]) -> float | None:
        if not self.enabled:
            return None
        try:
            from jaxlic.models.codec import Codec  # pylint: disable=g-import-not-at-top

            codec = Codec(self.spec.module, {"params": to_host(params)}, quality=self.spec.quality)
            bits = pixels = 0
            for img in images:
                data = codec.compress(np.round(img * 255.0).astype(np.uint8))
                bits += 8 * len(data)
                pixels += img.shape[0] * img.shape[1]
            return bits / pixels
        except (NotImplementedError, ImportError) as e:
            logging.info("Real bpp skipped for the rest of the run (codec unavailable: %s)", e)
        except Exception:  # pylint: disable=broad-except
            logging.exception("Real bpp failed; skipped for the rest of the run")
        self.enabled = False
        return None


def evaluate(
    params: PyTree, images: list[np.ndarray], eval_fn: Callable, replicated: NamedSharding, real_bpp: _RealBpp
) -> dict[str, float]:
    """Mean validation metrics over `images` (one at a time, replicated on every device)."""
    sums: dict[str, float] = {}
    for img in images:
        x = jax.make_array_from_process_local_data(replicated, img[None])
        for k, v in to_host(eval_fn(params, x)).items():
            sums[k] = sums.get(k, 0.0) + float(v)
    metrics = {k: v / len(images) for k, v in sums.items()}
    if metrics.get("bpp"):
        metrics["z_share"] = metrics["bpp_z"] / metrics["bpp"]
    if jax.process_index() == 0:
        bpp = real_bpp(params, images)
        if bpp is not None:
            metrics["real_bpp"] = bpp
    return metrics


def log_validation(step: int, metrics: dict[str, float]) -> None:
    """The validation line of `step`, and the collapse warning when z carries under 1% of the rate."""
    logging.info(
        "step %d validation: loss %.4f psnr %.2f bpp %.4f | z share %.2f%%, %d live z channels | %s",
        step,
        metrics["loss"],
        metrics["psnr"],
        metrics["bpp"],
        100 * metrics.get("z_share", 0.0),
        round(metrics.get("live_z_channels", 0)),
        metrics,
    )
    if warning := hyperprior_collapse_warning(metrics):
        logging.warning("step %d: %s", step, warning)
