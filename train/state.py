"""The training state: its initialisation (fresh or a warm start), the mesh it lives on, and
`build_train_setup`, which builds everything a training loop drives.

Data parallel over a 1-D ('data',) mesh: the batch is sharded on 'data', parameters and optimizer
state are replicated, the state is donated. The same code runs on one CPU, N fake CPU devices,
GPUs and several hosts (each host feeds its local batch; `jax.make_array_from_process_local_data`
builds the global array).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlic.models.init import GAIN_PAIRS, rate_spread_gains, torch_like_biases
from train.optim import (
    HYPERPRIOR_PREFIXES,
    create_learning_rate_schedule,
    create_optimizer,
    is_hyperprior_param,
)
from train.spec import ModelSpec, PyTree, build_model
from train.step import jit_train_step

# XLA CPU options that cut compile time ~3x at the cost of slower steps.
FAST_COMPILE_CPU = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

#: Top-level parameters a warm start may lack (a fixed-rate file starting a variable-rate run);
#: they keep their initialisation.
WARM_START_FRESH = tuple(name for pair in GAIN_PAIRS for name in pair)


@flax.struct.dataclass
class TrainState:
    """Everything that a resumed run needs besides the config (the data position is `step`)."""

    step: jax.Array  # int32 scalar
    params: PyTree
    opt_state: PyTree
    nonfinite: jax.Array  # consecutive steps with a non-finite loss (their updates were skipped)


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


def to_host(tree: PyTree) -> PyTree:
    """Numpy copy of a replicated pytree (works when other processes hold the other devices)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


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
