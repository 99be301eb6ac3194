"""Initialisation: PyTorch-like biases for a fresh parameter tree, and spread gain units.

Flax initialises convolution biases to zero; PyTorch (and so CompressAI) draws each bias from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)). With zero biases an untrained model maps y = 0 to x_hat = 0
exactly, and g_a's outputs come out about half as large as CompressAI's (`eval.learning_parity`
compares the two trainers). Flax's bias initialisers see only the bias's shape, so the fan-in
is read from the sibling kernel here, after `init`. The trainer applies it to every fresh run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["rate_spread_gains", "torch_like_biases"]


def torch_like_biases(params, key: jax.Array):
    """Returns `params` with every `bias` beside a `kernel` [..., out] redrawn like PyTorch's.

    The fan-in is the product of the kernel's dimensions but the last (a [k, k, in, out] conv
    kernel: k * k * in). Layers initialised to zero on purpose (a zero kernel, such as the
    post-processing network's last convolution, which makes it the identity at init) and all
    other parameters are returned unchanged.
    """
    counter = [0]

    def visit(tree):
        if not isinstance(tree, dict):
            return tree
        out = {k: visit(v) for k, v in tree.items()}
        if "kernel" in tree and "bias" in tree and not isinstance(tree["bias"], dict):
            kernel, bias = tree["kernel"], tree["bias"]
            bound = 1.0 / np.sqrt(max(int(np.prod(kernel.shape[:-1])), 1))
            counter[0] += 1
            k = jax.random.fold_in(key, counter[0])
            drawn = jax.random.uniform(k, bias.shape, jnp.float32, -bound, bound).astype(bias.dtype)
            # jnp.where, not `if`: this runs traced inside the trainer's jitted init.
            out["bias"] = jnp.where(jnp.any(kernel != 0), drawn, bias)
        return out

    return visit(dict(params))


#: Gain-unit pairs (gain, inverse gain) of a variable-rate model: y's, and z's when it has them.
GAIN_PAIRS = (("gain", "inv_gain"), ("z_gain", "inv_z_gain"))


def rate_spread_gains(params, lambdas, reference: float, pairs=GAIN_PAIRS):
    """Returns `params` with the gain units of `pairs` that it has spread over the rate points.

    Rate point i scales y by ``sqrt(lambdas[i] / reference)`` (the inverse gain unit by its
    reciprocal), the same for every channel: at high rate, the MSE-optimal quantisation step goes
    as ``lambda ** -0.5``, so this is where the points roughly belong. The point at `reference`
    keeps gain 1 (a warm start from a fixed-rate model of that lambda is that model there).
    Adam moves a log gain by about the learning rate per step, so gains that all start at 1
    would need thousands of steps to separate the points (a 500-step run from 1 at lr 2e-4 coded
    Kodak at 0.334 and 0.345 bpp at its lowest and highest points). z's gains (`z_gains`
    models) get the same spread: z's quantisation then coarsens with y's.
    """
    log_g = 0.5 * jnp.log(jnp.asarray(lambdas, jnp.float32) / reference)
    out = dict(params)
    for pair in pairs:
        if pair[0] not in params:
            continue
        for name, sign in zip(pair, (1.0, -1.0), strict=True):
            shape = params[name]["log_gain"].shape
            out[name] = {**params[name], "log_gain": jnp.broadcast_to(sign * log_g[:, None], shape)}
    return out
