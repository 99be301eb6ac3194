"""Compact weight files: one msgpack file holding params and their metadata (no pickle).

Layout: `{"format": "jaxlic-weights", "version": 1, "meta": {...}, "params": {...}}`; `meta` holds
at least `model` and `config` (a `ModelConfig` dict), and usually `quality`, `lmbda`, the training
config and metrics. Version 2 files (`save(..., half=True)`) store the large arrays (kernels of
`HALF_MIN_SIZE` elements or more) as float16, about half the size; `load` returns float32 either
way, and a model coded with such a file is the model of its float16 values (encoder and decoder
alike), so its results are measured on the file itself.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import serialization

from jaxlic.errors import ModelError
from jaxlic.image_io import write_bytes_atomic

FORMAT = "jaxlic-weights"
VERSION = 1
#: The version of files with float16 arrays (readers of version 1 refuse them with a clear error).
VERSION_HALF = 2
#: Arrays of at least this many elements are stored as float16 by `save(..., half=True)`; smaller
#: ones (biases, GDN and entropy-bottleneck parameters, gains) stay float32.
HALF_MIN_SIZE = 4096


def _half(a: np.ndarray) -> np.ndarray:
    if a.size < HALF_MIN_SIZE or not np.all(np.abs(a) < np.finfo(np.float16).max):
        return a
    return a.astype(np.float16)


def save(path: str | os.PathLike, params, meta: dict, half: bool = False) -> None:
    """Writes params (a pytree of arrays) and JSON-able `meta` atomically to `path`.

    With `half`, arrays of `HALF_MIN_SIZE` elements or more are stored as float16 (version 2).
    """
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    if half:
        params = jax.tree_util.tree_map(_half, params)
    version = VERSION_HALF if half else VERSION
    blob = serialization.msgpack_serialize(
        {"format": FORMAT, "version": version, "meta": json.dumps(meta), "params": params}
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_bytes_atomic(path, blob, force=True)


def load(path: str | os.PathLike) -> tuple[dict, dict]:
    """Reads a weight file -> (params, meta). Raises ModelError on a missing or foreign file."""
    try:
        with open(path, "rb") as f:
            blob = serialization.msgpack_restore(f.read())
    except FileNotFoundError:
        raise ModelError(f"weights file not found: {path}") from None
    except Exception as e:  # msgpack raises many types on garbage
        raise ModelError(f"{path} is not a jaxlic weights file ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{path} is not a jaxlic weights file")
    if blob.get("version") not in (VERSION, VERSION_HALF):
        raise ModelError(f"{path}: unsupported weights version {blob.get('version')}")
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), blob["params"])
    return params, json.loads(blob["meta"])


def check_matches(params, reference) -> None:
    """Raises ModelError unless `params` has exactly the structure and shapes of `reference`."""
    flat = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}
    ref = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(reference)}
    missing = sorted(set(ref) - set(flat))
    extra = sorted(set(flat) - set(ref))
    wrong = sorted(k for k in set(ref) & set(flat) if ref[k] != flat[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
        if wrong:
            parts.append(f"shape mismatch {[(k, flat[k], ref[k]) for k in wrong[:3]]}")
        raise ModelError("weights do not match the model: " + "; ".join(parts))
