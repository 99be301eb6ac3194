"""One training step: the RD loss and the aux loss, their gradients and the update.

Objective (Ballé et al., 2018, "Variational image compression with a scale hyperprior";
CompressAI's MSE recipe): loss = lmbda * 255^2 * MSE + bpp, with additive uniform noise as the
training proxy for quantization. The quantiles follow the aux loss only (`model.apply(v,
method="aux_loss")`), every other parameter the RD loss only. The noise key of step s is
`fold_in(training key, s)`, so a resumed run draws the noise an uninterrupted one draws.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlic.losses import rd_loss
from train.optim import is_aux_param
from train.spec import ModelSpec

if TYPE_CHECKING:
    from train.state import TrainState

#: Folded into a step's noise key for the rate points a variable-rate batch draws.
RATE_KEY_SALT = 0x52415445


def train_step(
    state: TrainState,
    batch: jax.Array,
    key: jax.Array,
    *,
    spec: ModelSpec,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    z_rate_warmup: int = 0,
) -> tuple[TrainState, dict]:
    """One RD + aux update on a global batch [B, H, W, 3]; skipped if anything is non-finite.

    With `z_rate_warmup = W > 0` z's rate is weighted min(1, step / W) in the loss.
    """
    noise_key = jax.random.fold_in(key, state.step)
    rate, lmbda = (), spec.lmbda
    if spec.variable_rate:
        # Each example draws a rate point, from a key of (seed, step) only (exact resumes).
        index = jax.random.randint(
            jax.random.fold_in(noise_key, RATE_KEY_SALT), (batch.shape[0],), 0, len(spec.lambdas)
        )
        rate, lmbda = (index.astype(jnp.float32),), jnp.asarray(spec.lambdas, jnp.float32)[index]

    def rd_fn(params):
        out = spec.module.apply(
            {"params": params}, batch, *rate, method="forward_train", rngs={"noise": noise_key}
        )
        z_weight = None
        if z_rate_warmup:
            z_weight = jnp.minimum(1.0, state.step.astype(jnp.float32) / z_rate_warmup)
        terms = rd_loss(out, batch, lmbda, z_weight)
        return terms["loss"], terms

    def aux_fn(params):
        return spec.module.apply({"params": params}, method="aux_loss")

    (loss, terms), rd_grads = jax.value_and_grad(rd_fn, has_aux=True)(state.params)
    aux_loss, aux_grads = jax.value_and_grad(aux_fn)(state.params)
    # Quantiles follow the aux loss only; every other parameter follows the RD loss only.
    grads = jax.tree_util.tree_map_with_path(
        lambda path, g, a: a if is_aux_param(path) else g, rd_grads, aux_grads
    )
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(aux_loss) & jnp.isfinite(grad_norm)

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)
    nonfinite = jnp.where(finite, 0, state.nonfinite + 1)
    new_state = state.replace(
        step=state.step + 1,
        params=jax.tree.map(keep, params, state.params),
        opt_state=jax.tree.map(keep, opt_state, state.opt_state),
        nonfinite=nonfinite,
    )
    metrics = dict(
        terms,
        aux_loss=aux_loss,
        grad_norm=grad_norm,
        learning_rate=schedule(state.step),
        finite=finite.astype(jnp.float32),
        nonfinite=nonfinite,
    )
    return new_state, metrics


def jit_train_step(
    spec: ModelSpec,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    state_shardings: TrainState,
    mesh: jax.sharding.Mesh,
    compiler_options: dict | None = None,
    z_rate_warmup: int = 0,
) -> Callable:
    """`train_step` jitted: batch sharded on 'data', state replicated and donated."""
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        functools.partial(train_step, spec=spec, tx=tx, schedule=schedule, z_rate_warmup=z_rate_warmup),
        in_shardings=(state_shardings, NamedSharding(mesh, P("data")), replicated),
        out_shardings=(state_shardings, replicated),
        donate_argnums=0,
        compiler_options=compiler_options,
    )
