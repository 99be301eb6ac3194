"""The trained weights as a jaxlic weights file (what `jaxlic.zoo` and the CLI load)."""

from __future__ import annotations

import json
import pathlib

import ml_collections
from absl import logging

from train.spec import ModelSpec, PyTree, model_overrides
from train.state import to_host


def exact_export(spec: ModelSpec, params: PyTree) -> tuple[PyTree, dict]:
    """An exact model's params on their integer grids, and the worst-case |accumulator| of each
    of its integer convolutions (as fractions of 2^31); raises if one could overflow int32."""
    snapped, bounds = spec.module.apply({"params": params}, method="exact_export")
    worst = {name: [b / 2**31 for b in v] for name, v in bounds.items()}
    if any(b >= 1 for v in worst.values() for b in v):
        raise ValueError(f"an integer convolution of the exact path could overflow int32: {worst}")
    return snapped, worst


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
