"""The optimiser: Adam on the RD loss with a learning-rate schedule, Adam on the aux loss.

The factorized prior's quantiles are fitted by their own Adam on the auxiliary loss, exactly like
CompressAI's `aux_optimizer` (`param_labels` sends them there); everything else follows the RD
loss. `config.optim.hyper_lr_factor` scales the hyperprior's updates (`scale_hyperprior`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from train.spec import PyTree


def is_aux_param(path) -> bool:
    """True for the entropy bottleneck's `quantiles` (fitted by the aux loss only)."""
    last = path[-1]
    return getattr(last, "key", getattr(last, "name", None)) == "quantiles"


#: Top-level parameter names of the hyperprior: h_a, h_s and the entropy bottleneck's density.
HYPERPRIOR_PREFIXES = ("h_a", "h_s", "entropy_bottleneck")


def is_hyperprior_param(path) -> bool:
    """True for h_a's, h_s's and the entropy bottleneck's parameters (see `config.optim.hyper_lr_factor`)."""
    return str(getattr(path[0], "key", "")).startswith(HYPERPRIOR_PREFIXES)


def param_labels(params: PyTree) -> PyTree:
    return jax.tree_util.tree_map_with_path(lambda path, _: "aux" if is_aux_param(path) else "main", params)


def create_learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up, then cosine decay, step decay or a constant.

    With `optim.schedule_start = S > 0` the whole schedule (warm-up included) starts again at step S
    and spans steps S..num_steps: a warm restart for fine-tuning a resumed run (e.g. on larger crops)
    without replaying its first S steps' schedule. Before S the rate is the restarted schedule's
    first value (zero with a warm-up).
    """
    o = config.optim
    start = int(o.get("schedule_start", 0))
    lr, warmup, total = o.learning_rate, int(o.warmup_steps), int(config.num_steps) - start
    if total <= 0:
        raise ValueError(f"optim.schedule_start={start} must be below num_steps={config.num_steps}")
    if o.schedule == "cosine":
        sched = optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=lr,
            warmup_steps=warmup,
            decay_steps=max(total, warmup + 1),
            end_value=lr * o.end_lr_factor,
        )
    else:
        warm = optax.linear_schedule(0.0, lr, max(warmup, 1))
        if o.schedule == "step":
            boundaries = {max(int(f * total) - warmup, 1): o.step_factor for f in o.step_boundaries}
            after = optax.piecewise_constant_schedule(lr, boundaries)
        elif o.schedule == "constant":
            after = optax.constant_schedule(lr)
        else:
            raise ValueError(f"unknown schedule {o.schedule!r}")
        sched = optax.join_schedules([warm, after], [warmup])
    if not start:
        return sched
    return lambda step: sched(jnp.maximum(step - start, 0))


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam (+ global-norm clipping) on the RD loss; a separate Adam for the quantiles."""
    o = config.optim
    main = optax.chain(
        optax.clip_by_global_norm(o.clip_norm) if o.clip_norm else optax.identity(),
        optax.adam(create_learning_rate_schedule(config), b1=o.b1, b2=o.b2),
        *([scale_hyperprior(o.hyper_lr_factor)] if o.get("hyper_lr_factor", 1.0) != 1.0 else []),
    )
    return optax.multi_transform({"main": main, "aux": optax.adam(o.aux_learning_rate)}, param_labels)


def scale_hyperprior(factor: float) -> optax.GradientTransformation:
    """Multiplies the updates of the hyperprior's parameters by `factor` (its own learning rate)."""

    def scale(path, u):
        return u * factor if is_hyperprior_param(path) else u

    def update(updates, state, params=None):
        del params
        return jax.tree_util.tree_map_with_path(scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
