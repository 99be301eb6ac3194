"""Compact weight files: one msgpack file holding params and their metadata (no pickle).

Layout: `{"format": "jaxlic-weights", "version": 1, "meta": {...}, "params": {...}}`; `meta` holds
at least `model` and `config` (a `ModelConfig` dict), and usually `quality`, `lmbda`, the training
config and metrics. Version 2 files (`save(..., half=True)`) store the large arrays (kernels of
`HALF_MIN_SIZE` elements or more) as float16, about half the size; `load` returns float32 either
way, and a model coded with such a file is the model of its float16 values (encoder and decoder
alike), so its results are measured on the file itself.
"""

from __future__ import annotations

import hashlib
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


#: Parameters that only the encoder uses (the analysis side): left out of `fingerprint`, so that
#: a stream names exactly the weights its decoder needs.
ENCODER_ONLY = ("g_a_", "h_a_", "gain", "z_gain")


def fingerprint(params) -> int:
    """A 63-bit content hash of the decoder's parameters (float32 values, by path).

    Streams carry it (`jaxlic.models.codec`), so that a stream meeting other weights of the same
    model name fails with a one-line error instead of decoding to garbage. Encoder-only
    parameters (`ENCODER_ONLY` prefixes of top-level names) are left out.
    """
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_leaves_with_path(params)
    for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        top = str(getattr(path[0], "key", path[0]))
        if top.startswith(ENCODER_ONLY[:2]) or top in ENCODER_ONLY[2:]:
            continue
        a = np.ascontiguousarray(np.asarray(leaf, np.float32))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str(a.shape).encode())
        h.update(a.astype("<f4").tobytes())
    return int.from_bytes(h.digest()[:8], "big") >> 1
