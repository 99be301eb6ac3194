"""Pretrained models: find, load and check weight files, and build a ready `Codec`.

Shipped weights live in `jaxlic/pretrained/` as `<model>-q<quality>.msgpack` (see
`jaxlic.weights` for the format), each with a `.json` beside it holding its training config
and metrics. Nothing is downloaded.

Every weights file a release shipped stays loadable: when the file of a name is replaced, the
old one moves to `jaxlic/pretrained/archive/` (`<model>-q<quality>-<fingerprint>.msgpack`).
Streams name the weights they were written with (`jaxlic.weights.fingerprint`); `for_stream`
finds them among the shipped and archived files. Version 1 streams (no fingerprint, float
entropy path) decode with the newest float file of their name (`archive/LEGACY.json`).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from jaxlic import weights as weights_io
from jaxlic.errors import ModelError
from jaxlic.models.codec import Codec
from jaxlic.models.config import ModelConfig
from jaxlic.models.registry import (  # is_variable_rate: re-exported for the evaluation
    DEFAULT_MODEL,
    get_config,
    get_model,
    is_variable_rate,  # noqa: F401
    list_models,
)

PRETRAINED_DIR = pathlib.Path(__file__).parent / "pretrained"
ARCHIVE_DIR = PRETRAINED_DIR / "archive"


def available() -> dict[str, list[int]]:
    """{model name: [qualities]} of the weight files shipped with jaxlic."""
    out: dict[str, list[int]] = {}
    for f in sorted(PRETRAINED_DIR.glob("*-q*.msgpack")):
        name, _, q = f.stem.rpartition("-q")
        if name in list_models(variable_rate=True) and q.isdigit():
            out.setdefault(name, []).append(int(q))
    return out


def _shipped_path(name: str, quality: int | None) -> pathlib.Path:
    qs = available().get(name, [])
    if not qs:
        have = ", ".join(f"{n} (q{','.join(map(str, q))})" for n, q in available().items()) or "none"
        raise ModelError(f"no shipped weights for model {name!r} (shipped: {have}); pass --weights FILE")
    if quality is None:
        quality = qs[len(qs) // 2]
    if quality not in qs:
        raise ModelError(f"no shipped weights for {name} at quality {quality}; available qualities: {qs}")
    return PRETRAINED_DIR / f"{name}-q{quality}.msgpack"


def _init_fn(model, size: int = 64):
    """`rngs -> variables` of a model, through its training forward pass on a blank image."""
    x = jnp.zeros((1, size, size, 3), jnp.float32)
    rate = (0.0,) if model.cfg.num_rates > 0 else ()
    return lambda rngs: model.init(rngs, x, *rate, method="forward_train")


def _rngs(seed: int) -> dict:
    return {"params": jax.random.key(seed), "noise": jax.random.key(seed + 1)}


def variable_shapes(model):
    """The variables `init_variables` returns, as shapes and dtypes (nothing is computed).

    A process with `jaxlic.warm_start` on reads the shapes an earlier one stored instead of
    tracing the initialisation.
    """
    from jaxlic import warm_start

    return warm_start.cached_shapes(model.cfg, lambda: jax.eval_shape(_init_fn(model), _rngs(0)))


def init_variables(model, seed: int = 0, size: int = 64):
    """Randomly initialised variables of a model (for tests and benchmarks).

    Op by op, not one jitted program: every parameter's draw is a small kernel that XLA compiles
    once per shape and the compilation cache shares across models, which the test suite relies on
    (docs/RESULTS.md, "Measurements moved out of docstrings").
    """
    return _init_fn(model, size)(_rngs(seed))


def codec_from_weights(params, meta: dict, *, name: str | None = None, quality: int | None = None) -> Codec:
    """A Codec from loaded params + meta; checks that the params fit the model they claim."""
    cfg_dict = meta.get("config")
    if not isinstance(cfg_dict, dict):
        raise ModelError("weights file has no model config in its metadata")
    try:
        cfg = ModelConfig(**cfg_dict)
    except (TypeError, ValueError) as e:
        raise ModelError(f"weights file has an invalid model config: {e}") from None
    if name is not None and cfg.name != name:
        raise ModelError(f"weights are for model {cfg.name!r}, not {name!r}")
    q = int(meta.get("quality", 0))
    if quality is not None and q != quality:
        raise ModelError(f"weights are for quality {q}, not {quality}")
    from jaxlic.models.compressor import Compressor

    model = Compressor(cfg)
    shapes = variable_shapes(model)["params"]
    weights_io.check_matches(params, shapes)
    # device_put, not jnp.asarray: the latter traces one conversion per distinct parameter shape.
    params = jax.device_put(params)
    from jaxlic import warm_start  # stored executables, in processes that turned them on

    return warm_start.install(Codec(model, {"params": params}, quality=q, meta=meta))


def load(name: str | None = None, quality: int | None = None, weights=None) -> Codec:
    """The codec for a model name and quality, from shipped weights or a weights file.

    Args:
      name: registry name. Without `weights` it defaults to the project's default model
        (`DEFAULT_MODEL`, "ckbd-full-vr"); with `weights` None accepts whatever model the file holds.
      quality: quality index; None picks a shipped one (the middle of those available). A
        variable-rate model (`<name>-vr`) has one weights file (quality 0) for all its rates:
        pass its rate parameter to `Codec.compress(img, rate=r)` instead.
      weights: path of a weights file; overrides the shipped weights.
    Raises:
      ModelError: unknown model/quality, missing weights, or weights that do not fit the model.
    """
    if weights is None:
        name = name or DEFAULT_MODEL
    if name is not None:
        get_config(name)  # raises ModelError for an unknown name
    path = weights if weights is not None else _shipped_path(name, quality)
    params, meta = weights_io.load(path)
    return codec_from_weights(params, meta, name=name, quality=quality)


def random_codec(name: str, quality: int = 3, seed: int = 0, **overrides) -> Codec:
    """A codec with random weights (tests, speed benchmarks)."""
    model = get_model(name, quality, **overrides)
    v = init_variables(model, seed)
    return Codec(model, v, quality=quality)


def _candidates(name: str, quality: int) -> list[pathlib.Path]:
    """Shipped and archived weights files of a model name and quality, the shipped one first."""
    files = [PRETRAINED_DIR / f"{name}-q{quality}.msgpack"]
    files += sorted(ARCHIVE_DIR.glob(f"{name}-q{quality}-*.msgpack"))
    return [f for f in files if f.is_file()]


def _legacy(name: str, quality: int) -> pathlib.Path | None:
    """The float weights that version 1 streams of `name` at `quality` were written with."""
    import json

    index = ARCHIVE_DIR / "LEGACY.json"
    if not index.is_file():
        return None
    entry = json.loads(index.read_text()).get(f"{name}-q{quality}")
    return None if entry is None else ARCHIVE_DIR / entry


def for_stream(header, codec: Codec | None = None) -> Codec:
    """The codec of the weights a stream was written with.

    Args:
      header: the stream's `jaxlic.coding.container.Header`.
      codec: the codec already loaded for the stream's model name (returned when it fits).

    Raises:
      ModelError: no shipped or archived file holds the weights the stream names.
    """
    from jaxlic.coding.container import WEIGHTS_KEY

    wid = header.extra.get(WEIGHTS_KEY)
    if wid is None:  # version 1: float entropy path, no fingerprint
        if codec is not None and not codec.exact:
            return codec
        legacy = _legacy(header.model, header.quality)
        if legacy is None:
            raise ModelError(
                f"stream (format version 1) needs the float {header.model} weights it was written with; "
                "pass --weights FILE"
            )
        return load(header.model, header.quality, weights=legacy)
    if codec is not None and codec.weights_id == wid:
        return codec
    for path in _candidates(header.model, header.quality):
        params, meta = weights_io.load(path)
        if meta.get("weights_id") == wid or weights_io.fingerprint(params) == wid:
            return codec_from_weights(params, meta, name=header.model, quality=header.quality)
    raise ModelError(
        f"stream needs {header.model} weights {wid:016x}, which jaxlic does not ship: pass --weights FILE"
    )
