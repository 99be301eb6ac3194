"""Rate-distortion training loop for jaxlic models.

Objective (Ballé et al., 2018, "Variational image compression with a scale hyperprior";
CompressAI's MSE recipe): loss = lmbda * 255^2 * MSE + bpp, with additive uniform noise as
the training proxy for quantization. The factorized prior's quantiles are fitted separately by
their own Adam on the auxiliary loss (`model.apply(v, method="aux_loss")`), exactly like
CompressAI's `aux_optimizer`: the main optimizer never sees them and the aux loss moves nothing
else.

Layout follows Flax's examples: `train_and_evaluate(config, workdir)` is built from
`create_train_state`, `train_step` and `eval_step`. Data parallel over a 1-D ('data',) mesh:
the batch is sharded on 'data', parameters and optimizer state are replicated, the state is
donated. The same code runs on one CPU, N fake CPU devices, GPUs and several hosts (each host
feeds its local batch; `jax.make_array_from_process_local_data` builds the global array).

Determinism: the noise key of step s is `fold_in(training_key, s)` (`make_keys`) and the data
of step s is a function of (seed, s) (see `input_pipeline`), so a run resumed from a
checkpoint reproduces an uninterrupted run bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import pathlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlic.losses import rd_loss
from jaxlic.models.init import GAIN_PAIRS, rate_spread_gains, torch_like_biases
from train import input_pipeline, metric_writers

PyTree = Any

# XLA CPU options that cut compile time ~3x at the cost of slower steps.
FAST_COMPILE_CPU = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped the run after ``step``, which is checkpointed: the same command
    resumes it."""

    def __init__(self, step: int, signum: int, checkpoints: pathlib.Path):
        self.step, self.signum = step, signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}, checkpointed in {checkpoints}; "
            "the same command resumes the run"
        )


@flax.struct.dataclass
class TrainState:
    """Everything that a resumed run needs besides the config (the data position is `step`)."""

    step: jax.Array  # int32 scalar
    params: PyTree
    opt_state: PyTree
    nonfinite: jax.Array  # consecutive steps with a non-finite loss (their updates were skipped)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model and the rate-distortion hyper-parameters it is trained with."""

    module: Any  # flax.linen.Module
    name: str
    quality: int
    lmbda: float
    N: int
    M: int
    #: A variable-rate model's lambda per rate point (Cui et al. 2021 gain units); () when fixed.
    lambdas: tuple[float, ...] = ()

    @property
    def variable_rate(self) -> bool:
        return bool(self.lambdas)


# ---------------------------------------------------------------------------------------------
# Setup helpers.


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
    """Joins a multi-process run when `config.distributed` (must precede any other JAX call)."""
    if not config.get("distributed"):
        return
    # CPU collectives across processes need gloo; the setting is ignored by GPU/TPU clients.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address or None,
        num_processes=config.num_processes or None,
        process_id=None if config.process_id < 0 else config.process_id,
    )
    logging.info(
        "Process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def model_overrides(config: ml_collections.ConfigDict) -> dict:
    """`get_model` overrides of a config: `model_kwargs`, plus `exact` (the exact entropy path's
    fractional bits, "8,10,..." -> a tuple) when set."""
    kwargs = dict(config.get("model_kwargs", {}))
    if config.get("exact"):
        try:
            kwargs["exact"] = tuple(int(v) for v in str(config.exact).split(","))
        except ValueError:
            raise ValueError(f"config.exact={config.exact!r}: expected comma-separated integers") from None
    return kwargs


def build_model(config: ml_collections.ConfigDict) -> ModelSpec:
    """The model of `config.model`; lmbda/N/M default to the model's quality table.

    `config.model` is a registry name (`jaxlic.models.list_models()`), or `package.module:factory`
    for a custom module built as `factory(N=..., M=...)` (then lmbda, N and M must be set).
    """
    name = config.model
    if ":" in name:
        module_name, attr = name.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
        if config.lmbda is None or config.N is None or config.M is None:
            raise ValueError(f"custom model {name} needs config.lmbda, config.N and config.M")
        lmbda, n, m = config.lmbda, config.N, config.M
    else:
        from jaxlic.models import get_model, qualities, registry  # pylint: disable=g-import-not-at-top

        factory = functools.partial(get_model, name)
        if registry.is_variable_rate(name):
            # One model for every rate: point i trains at lambdas[i]; exported as quality 0.
            lambdas = tuple(float(v) for v in (config.get("lambdas") or registry.VR_LAMBDAS))
            n, m = registry.default_widths(name, 0)
            n = n if config.N is None else config.N
            m = m if config.M is None else config.M
            kwargs = dict(model_overrides(config), num_rates=len(lambdas))
            module = factory(N=n, M=m, **kwargs)
            mid = lambdas[registry.default_rate(lambdas)]
            return ModelSpec(module, name, 0, float(mid), int(n), int(m), lambdas)
        lmbda, n, m = qualities(name)[config.quality]
        lmbda = lmbda if config.lmbda is None else config.lmbda
        n = n if config.N is None else config.N
        m = m if config.M is None else config.M
    module = factory(N=n, M=m, **model_overrides(config))
    return ModelSpec(module, name, int(config.quality), float(lmbda), int(n), int(m))


def make_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init key, training key); step s draws its noise from fold_in(training key, s)."""
    key = jax.random.key(seed)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def compiler_options(config: ml_collections.ConfigDict) -> dict | None:
    """XLA options for every jit of the run (`config.compiler_options`), or None."""
    options = config.get("compiler_options")
    return options.to_dict() if options else None


def create_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D ('data',) mesh over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    # Auto axes: shardings are given at the jit boundary and GSPMD propagates them inside.
    return jax.make_mesh(
        (len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
    )


def is_aux_param(path) -> bool:
    """True for the entropy bottleneck's `quantiles` (fitted by the aux loss only)."""
    last = path[-1]
    return getattr(last, "key", getattr(last, "name", None)) == "quantiles"


#: Top-level parameter names of the hyperprior: h_a, h_s and the entropy bottleneck's density.
HYPERPRIOR_PREFIXES = ("h_a", "h_s", "entropy_bottleneck")


def is_hyperprior_param(path) -> bool:
    """True for h_a's, h_s's and the entropy bottleneck's parameters (see `optim.hyper_lr_factor`)."""
    return str(getattr(path[0], "key", "")).startswith(HYPERPRIOR_PREFIXES)


def param_labels(params: PyTree) -> PyTree:
    return jax.tree_util.tree_map_with_path(lambda path, _: "aux" if is_aux_param(path) else "main", params)


#: Below this share of the rate in z, the hyperprior is "collapsed" (see hyperprior_collapse_warning).
HYPERPRIOR_COLLAPSE_SHARE = 0.01
#: Folded into a step's noise key for the rate points a variable-rate batch draws.
RATE_KEY_SALT = 0x52415445


def hyperprior_collapse_warning(metrics: dict) -> str | None:
    """A warning when z carries under 1% of the validation rate, else None.

    In our runs z carried 14% of the Kodak rate (bmshj2018-hyperprior after 600 steps) and 6.6%
    (ckbd-full at step 1000); a share under 1% means the hyperprior is barely used. It happened to
    ckbd-full on a 2-core CPU (N=M=64, 128 px crops, lr 5e-4): bpp_z fell from 0.0135 to 0.0013
    between steps 1000 and 2000 and stayed there, with about 8 of 64 z channels varying over a
    Kodak image; the anchors of the checkerboard are then coded from nearly fixed distributions.
    Neither a linear warm-up of the z rate's weight over 1500 steps nor fine-tuning on 256 px crops
    brought it back (measured; see jaxlic/pretrained/README.md). `python -m eval.latent_usage`
    shows which channels are used.
    """
    bpp, bpp_z = metrics.get("bpp"), metrics.get("bpp_z")
    if not bpp or bpp_z is None or bpp_z >= HYPERPRIOR_COLLAPSE_SHARE * bpp:
        return None
    return (
        f"hyperprior collapse: z carries {bpp_z:.5f} of {bpp:.4f} bpp "
        f"({100 * bpp_z / bpp:.2f}% < {100 * HYPERPRIOR_COLLAPSE_SHARE:.0f}%); "
        "see python -m eval.latent_usage --weights ..."
    )


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


# ---------------------------------------------------------------------------------------------
# State and steps.


def create_train_state(
    spec: ModelSpec,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    mesh: jax.sharding.Mesh,
    compiler_options: dict | None = None,
    init_params: PyTree | None = None,
) -> tuple[TrainState, TrainState]:
    """Initialises the state replicated on `mesh`.

    Args:
      init_params: host params to start from (a warm start, e.g. `load_init_params`) instead of
        the random initialisation; the optimizer state starts fresh either way.

    Returns:
      (state, state_shardings), the latter a TrainState of NamedShardings for jit/orbax.
    """

    def init(rng, params):
        k_params, k_noise = jax.random.split(rng)
        x = jnp.zeros((1, 64, 64, 3), jnp.float32)  # parameters do not depend on image size
        rate = (0.0,) if spec.variable_rate else ()
        variables = spec.module.init({"params": k_params, "noise": k_noise}, x, *rate, method="forward_train")
        extra = set(variables) - {"params"}
        if extra:
            raise ValueError(f"model has non-parameter collections {extra}; trainer handles params only")
        # Gain pairs that start fresh (a fresh run, or a warm start from weights without them).
        fresh_gains = [
            p for p in GAIN_PAIRS if p[0] in variables["params"] and (params is None or p[0] not in params)
        ]
        if params is None:  # a fresh run starts from PyTorch-like biases (jaxlic.models.init)
            params = torch_like_biases(variables["params"], jax.random.fold_in(k_params, 1))
        else:  # a warm start; parameters it lacks (WARM_START_FRESH only) start fresh
            params = {**variables["params"], **params}
        if fresh_gains:  # rate point i at gain sqrt(lambda_i / lambda of the default point)
            params = rate_spread_gains(params, spec.lambdas, spec.lmbda, fresh_gains)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            nonfinite=jnp.zeros((), jnp.int32),
        )

    replicated = NamedSharding(mesh, P())
    abstract = jax.eval_shape(init, rng, None)
    shardings = jax.tree.map(lambda _: replicated, abstract)
    if init_params is not None:
        from jaxlic import weights  # pylint: disable=g-import-not-at-top

        fresh = {
            k: abstract.params[k] for k in WARM_START_FRESH if k in abstract.params and k not in init_params
        }
        weights.check_matches({**fresh, **init_params}, abstract.params)
        if fresh:
            logging.info("init_from: %s start from their initialisation", ", ".join(fresh))
        init_params = jax.tree.map(lambda a: np.asarray(a, np.float32), init_params)
    if jax.default_backend() == "cpu":
        # Init runs once: on CPU an unoptimised compile saves much of its time (tens of seconds).
        compiler_options = {**(compiler_options or {}), **FAST_COMPILE_CPU}
    state = jax.jit(init, out_shardings=shardings, compiler_options=compiler_options)(rng, init_params)
    return state, shardings


def load_init_params(path: str, spec: ModelSpec) -> PyTree:
    """Params of a jaxlic weights file for a warm start (`config.init_from`).

    The file must hold the same registry model at the same widths (N, M), or, for a
    variable-rate model `<name>-vr`, its fixed-rate counterpart `<name>` at those widths: the
    gain units it lacks start fresh (spread over the rate points by their lambdas, see
    `create_train_state`). Anything else is an error, not a silent partial load.
    """
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    params, meta = weights.load(path)
    found = (meta.get("model"), meta.get("N"), meta.get("M"))
    allowed = {spec.name, spec.name.removesuffix("-vr")} if spec.variable_rate else {spec.name}
    if found[0] not in allowed or found[1:] != (spec.N, spec.M):
        raise ValueError(
            f"init_from {path} holds model {found[0]} N={found[1]} M={found[2]}, "
            f"but the config trains {spec.name} N={spec.N} M={spec.M}"
        )
    return params


def exact_export(spec: ModelSpec, params: PyTree) -> tuple[PyTree, dict]:
    """An exact model's params on their integer grids, and the worst-case |accumulator| of each
    of its integer convolutions (as fractions of 2^31); raises if one could overflow int32."""
    snapped, bounds = spec.module.apply({"params": params}, method="exact_export")
    worst = {name: [b / 2**31 for b in v] for name, v in bounds.items()}
    if any(b >= 1 for v in worst.values() for b in v):
        raise ValueError(f"an integer convolution of the exact path could overflow int32: {worst}")
    return snapped, worst


#: Top-level parameters a warm start may lack (a fixed-rate file starting a variable-rate run);
#: they keep their initialisation.
WARM_START_FRESH = tuple(name for pair in GAIN_PAIRS for name in pair)


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
    new_state = TrainState(
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


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """Everything a training loop drives: built once by `build_train_setup`."""

    spec: ModelSpec
    mesh: jax.sharding.Mesh
    xla_options: dict
    state: TrainState
    state_shardings: Any
    step: Callable
    key: jax.Array


def build_train_setup(
    config: ml_collections.ConfigDict, devices=None, *, warm_start: bool = True
) -> TrainSetup:
    """Model, mesh over `devices` (default: all), initial state, jitted step and step key.

    With `warm_start=False` the initial state is the seed's random init even if the config names
    `init_from`: a run that resumes from a checkpoint replaces the state anyway and must not
    depend on that file still being there.
    """
    spec = build_model(config)
    mesh = create_mesh(devices)
    tx = create_optimizer(config)
    init_key = make_keys(config.seed)[0]
    options = compiler_options(config)
    init_from = config.get("init_from") if warm_start else None
    init_params = load_init_params(init_from, spec) if init_from else None
    state, shardings = create_train_state(spec, tx, init_key, mesh, options, init_params)
    if config.optim.get("hyper_lr_factor", 1.0) != 1.0 and not any(
        is_hyperprior_param(path) for path, _ in jax.tree_util.tree_flatten_with_path(state.params)[0]
    ):
        raise ValueError(
            f"optim.hyper_lr_factor: {spec.name} has no {'/'.join(HYPERPRIOR_PREFIXES)} parameters"
        )
    step = jit_train_step(
        spec,
        tx,
        create_learning_rate_schedule(config),
        shardings,
        mesh,
        options,
        int(config.optim.get("z_rate_warmup_steps", 0)),
    )
    # Built by jit so that it is a global (replicated) array on multi-host runs too.
    key = jax.jit(lambda: make_keys(config.seed)[1], out_shardings=NamedSharding(mesh, P()))()
    return TrainSetup(spec, mesh, options, state, shardings, step, key)


def setup_train_step(config: ml_collections.ConfigDict, devices=None):
    """`(spec, state, step, key)` of `build_train_setup`, for benchmarks and tests that drive steps
    themselves: `state, metrics = step(state, batch, key)`."""
    t = build_train_setup(config, devices)
    return t.spec, t.state, t.step, t.key


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


def z_health(out: dict) -> dict:
    """How much the hyperprior is used: `live_z_channels`, the number of channels of z_hat that
    vary over the image (a collapsed hyperprior has a few; `evaluate` adds z's share of the rate)."""
    z_hat = out["z_hat"]
    live = z_hat.max(axis=(0, 1, 2)) > z_hat.min(axis=(0, 1, 2))
    return {"live_z_channels": jnp.sum(live.astype(jnp.float32))}


def validation_points(num_rates: int) -> list[int]:
    """The rate points a variable-rate model is validated at: lowest, middle, highest."""
    return sorted({0, (num_rates - 1) // 2, num_rates - 1})


# ---------------------------------------------------------------------------------------------
# Validation.


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


# ---------------------------------------------------------------------------------------------
# Checkpoints and export.


def create_checkpoint_manager(
    config: ml_collections.ConfigDict, workdir: pathlib.Path
) -> ocp.CheckpointManager:
    """Keeps the latest `keep_checkpoints` and the best one by validation RD loss."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [
            ocp.checkpoint_managers.LatestN(n=config.keep_checkpoints),
            # BestN keeps the n *largest* metric values, hence the minus sign.
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: -m["val_loss"], n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, enable_async_checkpointing=config.async_checkpointing
    )
    return ocp.CheckpointManager(workdir / "checkpoints", options=options)


def export_weights(
    config: ml_collections.ConfigDict, spec: ModelSpec, params: PyTree, metrics: dict, workdir: pathlib.Path
) -> pathlib.Path:
    """Writes export/{model}-q{quality}.msgpack and a JSON of config and metrics beside it (a
    variable-rate model has quality 0, the name `jaxlic.zoo` looks for when it is shipped)."""
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    stem = f"{spec.name.replace(':', '.')}-q{spec.quality}"
    model_kwargs = model_overrides(config)
    if spec.variable_rate:
        model_kwargs["num_rates"] = len(spec.lambdas)
    path = workdir / "export" / f"{stem}.msgpack"
    model_config = None
    if ":" not in spec.name:
        from jaxlic.models import get_config  # pylint: disable=g-import-not-at-top

        model_config = get_config(spec.name, N=spec.N, M=spec.M, **model_kwargs).to_dict()
    meta = dict(
        model=spec.name,
        quality=spec.quality,
        lmbda=spec.lmbda,
        **({"lambdas": list(spec.lambdas)} if spec.variable_rate else {}),
        N=spec.N,
        M=spec.M,
        config=model_config,
        train_config=json.loads(config.to_json_best_effort()),
        metrics=metrics,
    )
    params = to_host(params)
    if model_kwargs.get("exact"):
        params, meta["exact_bounds"] = exact_export(spec, params)
        from jaxlic.coding.tables import tables_to_dict  # pylint: disable=g-import-not-at-top
        from jaxlic.entropy import factorized  # pylint: disable=g-import-not-at-top

        # z's integer CDFs, computed once and shipped with the weights (no decoder rebuilds them)
        meta["z_tables"] = tables_to_dict(factorized.build_tables(params["entropy_bottleneck"]))
    weights.save(path, params, meta)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=float))
    logging.info("Exported weights to %s", path)
    return path


# ---------------------------------------------------------------------------------------------
# The loop.


def to_host(tree: PyTree) -> PyTree:
    """Numpy copy of a replicated pytree (works when other processes hold the other devices)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def _mean_metrics(history: list[dict]) -> dict[str, float]:
    history = to_host(history)
    out = {k: float(np.mean([h[k] for h in history])) for k in history[0] if k != "nonfinite"}
    out["nonfinite_steps"] = float(sum(1.0 - h["finite"] for h in history))
    del out["finite"]
    return out


class WallClock:
    """`config.max_wall_s`: a wall-clock budget for one invocation of the trainer (0: none).

    Counted from the start of `train_and_evaluate` (compilation and a restore included). With
    several processes, process 0's clock decides, at log steps only (one broadcast each), so
    that all processes stop after the same step.
    """

    def __init__(self, max_wall_s: float, t_begin: float, multi_process: bool):
        self.max_wall_s, self.t_begin, self.multi_process = float(max_wall_s or 0), t_begin, multi_process

    def expired(self, step: int, every_steps: int) -> bool:
        if self.max_wall_s <= 0:
            return False
        over = time.time() - self.t_begin >= self.max_wall_s
        if not self.multi_process:
            return over
        if step % every_steps:
            return False
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.int32(over)))


class StopRequest:
    """SIGTERM (a scheduler's preemption, the end of a session) or SIGINT (Ctrl-C) while training:
    the trainer finishes the step, checkpoints it and raises `TrainingInterrupted`, so that no
    step is lost. A second signal interrupts at once (KeyboardInterrupt / the default action).

    Used as a context manager around the training loop; it installs its handlers only in the
    main thread. With several processes, process 0's request decides, at log steps only (one
    broadcast each), so that all processes stop after the same step.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, multi_process: bool = False):
        self.multi_process = multi_process
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: do what it would have done without us
            self._restore()
            signal.raise_signal(signum)
            return
        self.signum = signum
        logging.warning(
            "%s received: checkpointing after this step, then stopping (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()

    def requested(self, step: int, every_steps: int) -> bool:
        if not self.multi_process:
            return self.signum is not None
        if step % every_steps:
            return False
        from jax.experimental import multihost_utils

        signum = multihost_utils.broadcast_one_to_all(np.int32(self.signum or 0))
        self.signum = int(signum) or None
        return self.signum is not None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains `config.model` in `workdir`, resuming from its latest checkpoint if any.

    Args:
      config: a training config (see `train/configs/`).
      workdir: checkpoints, TensorBoard events and exported weights go here.

    Returns:
      The final TrainState.

    Raises:
      NonFiniteLossError: `config.max_nonfinite_steps` consecutive non-finite steps; the
        checkpoints on disk hold the last good parameters.
      TrainingInterrupted: SIGTERM or SIGINT arrived; the step it arrived in was finished and
        checkpointed (see `StopRequest`).
    """
    t_begin = time.time()
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_main)
    if is_main:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    if config.batch_size % jax.device_count():
        raise ValueError(f"batch_size {config.batch_size} not divisible by {jax.device_count()} devices")
    ckpt = create_checkpoint_manager(config, workdir)
    setup = build_train_setup(config, warm_start=ckpt.latest_step() is None)
    spec, mesh, xla_options, state = setup.spec, setup.mesh, setup.xla_options, setup.state
    state_shardings, p_train_step, step_key = setup.state_shardings, setup.step, setup.key
    del setup  # holds the initial state, which a restore replaces
    local_batch = config.batch_size // jax.process_count()
    rate = (
        f"lambdas {min(spec.lambdas):g}..{max(spec.lambdas):g} ({len(spec.lambdas)} rate points)"
        if spec.variable_rate
        else f"q{spec.quality} (lmbda={spec.lmbda:g})"
    )
    logging.info(
        "Model %s %s, N=%d, M=%d; batch %d = %d processes x %d; %d devices",
        spec.name,
        rate,
        spec.N,
        spec.M,
        config.batch_size,
        jax.process_count(),
        local_batch,
        jax.device_count(),
    )

    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    logging.info("%d parameters", num_params)

    if ckpt.latest_step() is not None:
        abstract = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_shardings
        )
        state = ckpt.restore(ckpt.latest_step(), args=ocp.args.StandardRestore(abstract))
        logging.info("Resumed from step %d", int(state.step))
    start_step = int(state.step)

    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    p_eval_step = jax.jit(
        functools.partial(eval_step, spec=spec),
        in_shardings=(replicated, replicated),
        out_shardings=replicated,
        compiler_options=xla_options,
    )

    train_iter = input_pipeline.create_train_iterator(
        config.data, local_batch_size=local_batch, seed=config.seed, start_step=start_step
    )
    eval_images = input_pipeline.load_eval_images(config.data)
    real_bpp = _RealBpp(spec, config.real_bpp)

    report_progress = metric_writers.ReportProgress(
        num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every_steps
    )
    hooks = [report_progress] if is_main else []

    history: list[dict] = []
    last_eval: dict[str, float] = {}
    last_train: dict[str, float] = {}
    prev_nonfinite = None
    t_log, step_log = time.time(), start_step
    wall_clock = WallClock(config.get("max_wall_s", 0), t_begin, multi_process=jax.process_count() > 1)
    stopped_early = interrupted = False
    stop_request = StopRequest(multi_process=jax.process_count() > 1)
    with metric_writers.ensure_flushes(writer), stop_request:
        for step in range(start_step + 1, config.num_steps + 1):
            local = next(train_iter)
            batch = jax.make_array_from_process_local_data(batch_sharding, local)
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                state, metrics = p_train_step(state, batch, step_key)
            history.append(metrics)
            # The last step of the run, or of the wall-clock budget: log, validate, checkpoint.
            stopped_early = step < config.num_steps and wall_clock.expired(step, config.log_every_steps)
            # A stop request (SIGTERM, SIGINT): checkpoint this step, skip its validation, stop.
            interrupted = step < config.num_steps and stop_request.requested(step, config.log_every_steps)
            final = step == config.num_steps or stopped_early or interrupted
            if stopped_early:
                logging.info(
                    "Stopping after step %d: wall-clock budget config.max_wall_s=%gs reached",
                    step,
                    config.max_wall_s,
                )

            # Read the previous step's counter: a one-step lag keeps dispatch asynchronous.
            if prev_nonfinite is not None:
                count = int(prev_nonfinite)
                if count:
                    logging.warning(
                        "Step %d: non-finite loss or gradient, update skipped (%d in a row)", step - 1, count
                    )
                if count >= config.max_nonfinite_steps:
                    ckpt.wait_until_finished()
                    ckpt.close()
                    raise NonFiniteLossError(
                        f"{count} consecutive non-finite steps up to step {step - 1}; the last good "
                        f"checkpoint is step {ckpt.latest_step()} in {workdir / 'checkpoints'}"
                    )
            prev_nonfinite = metrics["nonfinite"]

            for hook in hooks:
                hook(step)
            if step % config.log_every_steps == 0 or final:
                summary = _mean_metrics(history)
                history = []
                now = time.time()
                steps_per_sec = (step - step_log) / (now - t_log)
                summary.update(steps_per_sec=steps_per_sec, images_per_sec=steps_per_sec * config.batch_size)
                t_log, step_log = now, step
                writer.write_scalars(step, {f"train/{k}": v for k, v in summary.items()})
                last_train = summary
                logging.info(
                    "step %d: loss %.4f psnr %.2f bpp %.4f | %.2f steps/s, %.1f images/s",
                    step,
                    summary["loss"],
                    summary["psnr"],
                    summary["bpp"],
                    steps_per_sec,
                    summary["images_per_sec"],
                )

            eval_metrics = None
            if eval_images and (step % config.eval_every_steps == 0 or final) and not interrupted:
                with report_progress.timed("eval"):
                    eval_metrics = evaluate(state.params, eval_images, p_eval_step, replicated, real_bpp)
                writer.write_scalars(step, {f"val/{k}": v for k, v in eval_metrics.items()})
                logging.info(
                    "step %d validation: loss %.4f psnr %.2f bpp %.4f | z share %.2f%%, %d live z channels | %s",
                    step,
                    eval_metrics["loss"],
                    eval_metrics["psnr"],
                    eval_metrics["bpp"],
                    100 * eval_metrics.get("z_share", 0.0),
                    round(eval_metrics.get("live_z_channels", 0)),
                    eval_metrics,
                )
                if warning := hyperprior_collapse_warning(eval_metrics):
                    logging.warning("step %d: %s", step, warning)
                last_eval = eval_metrics

            if step % config.checkpoint_every_steps == 0 or final:
                with report_progress.timed("checkpoint"):
                    ckpt.save(
                        step,
                        args=ocp.args.StandardSave(state),
                        metrics={"val_loss": eval_metrics["loss"]} if eval_metrics else None,
                    )

            if config.halt_after_steps and step >= config.halt_after_steps:
                logging.info("Halting after step %d (config.halt_after_steps)", step)
                break
            if stopped_early or interrupted:
                break

    if prev_nonfinite is not None and int(prev_nonfinite) >= config.max_nonfinite_steps:
        ckpt.wait_until_finished()
        ckpt.close()
        raise NonFiniteLossError(f"the last {int(prev_nonfinite)} steps were non-finite")
    ckpt.wait_until_finished()
    ckpt.close()
    if interrupted:
        writer.close()
        raise TrainingInterrupted(int(state.step), stop_request.signum, workdir / "checkpoints")
    done = int(state.step) == config.num_steps or stopped_early
    if config.export and done and is_main:
        metrics = dict(last_eval, step=int(state.step), wall_s=time.time() - t_begin)
        if last_train:
            metrics.update({f"train_{k}": v for k, v in last_train.items()})
        export_weights(config, spec, state.params, metrics, workdir)
    writer.close()
    return state
