"""Compact weight files: one msgpack file holding params and their metadata (no pickle).

Layout: `{"format": "jaxlic-weights", "version": 1, "meta": {...}, "params": {...}}`; `meta` holds
at least `model` and `config` (a `ModelConfig` dict), and usually `quality`, `lmbda`, the training
config and metrics.
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np
from flax import serialization

from jaxlic.errors import ModelError

FORMAT = "jaxlic-weights"
VERSION = 1


def save(path: str | os.PathLike, params, meta: dict) -> None:
    """Writes params (a pytree of arrays) and JSON-able `meta` atomically to `path`."""
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    blob = serialization.msgpack_serialize(
        {"format": FORMAT, "version": VERSION, "meta": json.dumps(meta), "params": params}
    )
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".msgpack")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    if blob.get("version") != VERSION:
        raise ModelError(f"{path}: unsupported weights version {blob.get('version')}")
    return blob["params"], json.loads(blob["meta"])


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
