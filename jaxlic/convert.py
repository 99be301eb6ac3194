"""Import CompressAI checkpoints into jaxlic weight files.

Maps the state dicts of CompressAI's (Bégaint et al. 2020, "CompressAI: a PyTorch library and
evaluation platform for end-to-end compression research") image models onto the parameters of
the matching :class:`jaxlic.models.compressor.Compressor`:

=================================  ================================  ===========================
CompressAI (zoo name / class)      jaxlic model                      published qualities
=================================  ================================  ===========================
bmshj2018-hyperprior               bmshj2018-hyperprior              1-8
  (ScaleHyperprior)
mbt2018-mean (MeanScaleHyperprior)  mbt2018-mean                     1-8
mbt2018 (JointAutoregressive...)   mbt2018                           1-8
cheng2020-anchor                   cheng2020-anchor                  1-6
cheng2020-attn                     cheng2020-attn                    1-6
cheng2020-anchor-checkerboard      ckbd                              (none published)
=================================  ================================  ===========================

Tensor rules (PyTorch is NCHW/OIHW, Flax NHWC/HWIO):

* ``Conv2d.weight [O, I, kh, kw]`` -> ``kernel [kh, kw, I, O]``.
* ``ConvTranspose2d.weight [I, O, 5, 5]`` (CompressAI's ``deconv``) -> the exact sub-pixel kernel
  ``conv/kernel [3, 3, I, 4*O]`` of :class:`jaxlic.layers.deconv.SubpixelDeconv`; its bias is kept.
* GDN ``beta`` unchanged, ``gamma`` transposed (both keep CompressAI's reparametrisation).
* EntropyBottleneck ``matrices.i``/``biases.i``/``factors.i``/``quantiles`` unchanged (also the
  older ``_matrices.i`` and ``_matrix{i}`` spellings).
* Checkerboard model: CompressAI feeds ``[context, hyper]`` to ``entropy_parameters``, jaxlic
  ``[hyper, context]``, so the input channels of its first 1x1 conv are swapped.

The range-coder tables (``_quantized_cdf``, ``_offset``, ``_cdf_length``) are dropped: jaxlic
rebuilds them from the parameters. Every other buffer is a constant of the architecture
(``target``, bounds, reparametrisation pedestals, ``scale_table``, context masks); those are
checked against jaxlic's constants, since a checkpoint that differs there would decode
differently. Any other unknown or missing key is an error that lists the keys.

Checkpoints are read with torch (``weights_only=True``) when it is installed, otherwise with a
small built-in reader of PyTorch's file formats that only accepts tensors, dicts and plain
values (no arbitrary pickled objects); ``.npz`` files need neither.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import os
import pickle
import re
import struct
import sys
import zipfile
from collections.abc import Mapping

import numpy as np

from jaxlic.errors import JaxlicError, ModelError
from jaxlic.models import components, registry

__all__ = [
    "COMPRESSAI_MODELS",
    "convert_state_dict",
    "infer_widths",
    "load_checkpoint",
    "main_convert",
]

#: CompressAI zoo name -> jaxlic registry name (the registry's `compressai_models()`; the
#: published qualities and their widths are the registry's too).
COMPRESSAI_MODELS = registry.compressai_models()
_JAXLIC_TO_COMPRESSAI = {v: k for k, v in COMPRESSAI_MODELS.items()}

_CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
_PEDESTAL = (2.0**-18) ** 2  # CompressAI's NonNegativeParametrizer reparam_offset**2
_CHECKERBOARD_PREFIXES = (
    ("latent_codec.hyper.entropy_bottleneck.", "entropy_bottleneck."),
    ("latent_codec.hyper.h_a.", "h_a."),
    ("latent_codec.hyper.h_s.", "h_s."),
    ("latent_codec.y.entropy_parameters.", "entropy_parameters."),
    ("latent_codec.y.context_prediction.", "context_prediction."),
    ("latent_codec.y.y.gaussian_conditional.", "gaussian_conditional."),
)


# ---------------------------------------------------------------------------------------------
# Reading checkpoints


def load_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a CompressAI checkpoint into ``{key: numpy array}``.

    Accepts ``.pth``/``.pth.tar``/``.pt`` files (a bare state dict, or a training checkpoint with
    the weights under ``"state_dict"``; a DataParallel ``module.`` prefix is removed) and
    ``.npz`` files (keys ``state_dict/<key>`` as in jaxlic's test fixtures, or bare keys).

    Raises:
      JaxlicError: missing or unreadable file, or one that holds no state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise JaxlicError(f"checkpoint not found: {path}")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as e:  # zipfile/ValueError/OSError on a bad file
            raise JaxlicError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
        if any(k.startswith("state_dict/") for k in arrays):
            arrays = {k[len("state_dict/") :]: v for k, v in arrays.items() if k.startswith("state_dict/")}
        return _strip_module_prefix(arrays)
    obj = _load_torch_file(path)
    return _strip_module_prefix(_find_state_dict(obj, path))


def _load_torch_file(path: str):
    try:
        import torch
    except ImportError:
        return read_torch_checkpoint(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types on foreign or corrupt files
        raise JaxlicError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__})") from None

    def to_np(v):
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu()
            if v.dtype == torch.bfloat16:
                v = v.float()
            return v.numpy()
        if isinstance(v, Mapping):
            return {k: to_np(x) for k, x in v.items()}
        return v

    return to_np(obj)


def _find_state_dict(obj, path: str) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, np.ndarray) for v in inner.values())
            ):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
        if tensors and len(tensors) == len(obj):
            return tensors
    raise JaxlicError(f"{path} holds no state dict (expected a dict of tensors or a 'state_dict' entry)")


def _strip_module_prefix(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


# --- torch-free reader of PyTorch's two file formats -----------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None

    def array(self) -> np.ndarray:
        if self.dtype == "bfloat16":  # upper half of a float32
            return (self.data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        return self.data


class _LazyTensor:
    """A tensor whose storage bytes may come later in the file (legacy format)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def resolve(self) -> np.ndarray:
        base = self.storage.array()
        if not self.size:
            return base[self.offset : self.offset + 1].reshape(()).copy()
        strides = tuple(s * base.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(base[self.offset :], shape=self.size, strides=strides)
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _SafeUnpickler(pickle.Unpickler):
    """Only tensors, storages, OrderedDicts and plain Python values; anything else is refused."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storage_loader):
        super().__init__(file)
        self._storage_loader = storage_loader

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "torch" and name == "Size":
            return tuple
        raise JaxlicError(f"checkpoint holds an unsupported object {module}.{name}; install torch to read it")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise JaxlicError(f"unsupported persistent id in checkpoint: {pid!r:.60}")
        return self._storage_loader(pid[1:])


def read_torch_checkpoint(path: str):
    """Reads a ``torch.save`` file without torch (zip format, or the legacy pickle format).

    Returns the saved object with every tensor as a numpy array.
    """
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path)
        else:
            obj = _read_legacy(path)
    except JaxlicError:
        raise
    except Exception as e:
        raise JaxlicError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    return _resolve(obj)


def _resolve(obj):
    if isinstance(obj, _LazyTensor):
        return obj.resolve()
    if isinstance(obj, Mapping):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _read_zip(path: str):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise JaxlicError(f"{path}: not a torch.save archive (no data.pkl)")
        root = pkl[0][: -len("data.pkl")]
        big_endian = f"{root}byteorder" in names and zf.read(f"{root}byteorder").strip() == b"big"
        storages: dict[str, _Storage] = {}

        def load_storage(info):
            storage_type, key, _location, numel = info[:4]
            if storage_type not in _STORAGE_DTYPES:
                raise JaxlicError(f"unsupported storage type {storage_type!r} in {path}")
            key = str(key)
            if key not in storages:
                st = _Storage(_STORAGE_DTYPES[storage_type], numel)
                raw_dtype = np.dtype(np.uint16 if st.dtype == "bfloat16" else st.dtype)
                if big_endian:
                    raw_dtype = raw_dtype.newbyteorder(">")
                st.data = np.frombuffer(zf.read(f"{root}data/{key}"), raw_dtype).astype(
                    raw_dtype.newbyteorder("=")
                )
                storages[key] = st
            return storages[key]

        return _SafeUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


def _read_legacy(path: str):
    with open(path, "rb") as f:
        magic = pickle.load(f)  # three small header pickles: ints and a dict of plain values
        if magic != _LEGACY_MAGIC:
            raise JaxlicError(f"{path} is not a PyTorch checkpoint")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise JaxlicError(f"{path}: big-endian legacy checkpoints are not supported; install torch")
        storages: dict[str, _Storage] = {}

        def load_storage(info):
            storage_type, key, _location, numel, view_metadata = info[:5]
            if view_metadata is not None:
                raise JaxlicError(f"{path}: storage views are not supported; install torch")
            if storage_type not in _STORAGE_DTYPES:
                raise JaxlicError(f"unsupported storage type {storage_type!r} in {path}")
            return storages.setdefault(str(key), _Storage(_STORAGE_DTYPES[storage_type], numel))

        obj = _SafeUnpickler(f, load_storage).load()
        keys = _SafeUnpickler(f, load_storage).load()
        for key in keys:
            st = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            raw_dtype = np.dtype(np.uint16 if st.dtype == "bfloat16" else st.dtype)
            buf = f.read(numel * raw_dtype.itemsize)
            if len(buf) != numel * raw_dtype.itemsize:
                raise JaxlicError(f"{path} is truncated")
            st.data = np.frombuffer(buf, raw_dtype)
    return obj


# ---------------------------------------------------------------------------------------------
# Mapping state dicts onto jaxlic params


_EB_SINGULAR = {"matrices": "matrix", "biases": "bias", "factors": "factor"}


def _normalize_key(key: str) -> str:
    if ".downsample." in key:  # early CompressAI name of ResidualBlockWithStride.skip
        key = key.replace(".downsample.", ".skip.")
    for old, new in _CHECKERBOARD_PREFIXES:
        if key.startswith(old):
            key = new + key[len(old) :]
            break
    m = re.fullmatch(r"entropy_bottleneck\._?(matrices|biases|factors)\.(\d+)", key)
    if m:
        return f"entropy_bottleneck.{_EB_SINGULAR[m[1]]}{m[2]}"
    m = re.fullmatch(r"entropy_bottleneck\._(matrix|bias|factor)(\d+)", key)
    if m:
        return f"entropy_bottleneck.{m[1]}{m[2]}"
    return key


def resolve_model_name(model_name: str) -> str:
    """The jaxlic registry name for a CompressAI model name (jaxlic names pass through)."""
    if model_name in COMPRESSAI_MODELS:
        return COMPRESSAI_MODELS[model_name]
    if model_name in _JAXLIC_TO_COMPRESSAI:
        return model_name
    raise ModelError(f"unknown CompressAI model {model_name!r}; supported: {', '.join(COMPRESSAI_MODELS)}")


def infer_widths(state_dict: Mapping[str, np.ndarray], model_name: str) -> tuple[int, int]:
    """``(N, M)`` of a CompressAI state dict, as CompressAI's ``from_state_dict`` reads them."""
    name = resolve_model_name(model_name)
    sd = {_normalize_key(k): v for k, v in state_dict.items()}
    n_key, m_key = components.TRANSFORMS[registry.get_config(name).transform].width_keys
    try:
        return int(np.shape(sd[n_key])[0]), int(np.shape(sd[m_key])[0])
    except KeyError as e:
        raise ModelError(
            f"state dict does not look like CompressAI's {model_name} (no {e.args[0]})"
        ) from None


def _expected_params(name: str, N: int, M: int):
    import jax
    import jax.numpy as jnp

    model = registry.get_model(name, N=N, M=M)

    def init():
        x = jnp.zeros((1, 64, 64, 3), jnp.float32)
        return model.init(
            {"params": jax.random.key(0), "noise": jax.random.key(1)}, x, method="forward_train"
        )

    shapes = jax.eval_shape(init)["params"]
    return model, jax.tree_util.tree_map(lambda s: tuple(s.shape), shapes)


def _walk(tree: Mapping, tokens: list[str]):
    """Follows CompressAI module names through the Flax param tree; None if they lead nowhere.

    ``seq.<i>`` becomes ``seq_<i>`` (list attributes in Flax ``setup``) and a bare ``<i>`` below a
    module that holds ``conv`` is the conv of a ``Sequential(Conv2d, PixelShuffle)``.
    """
    node, path, i = tree, [], 0
    while i < len(tokens):
        t = tokens[i]
        if not isinstance(node, Mapping):
            return None
        if i + 1 < len(tokens) and tokens[i + 1].isdigit() and f"{t}_{tokens[i + 1]}" in node:
            name, i = f"{t}_{tokens[i + 1]}", i + 2
        elif t in node:
            name, i = t, i + 1
        elif t.isdigit() and "conv" in node:
            name, i = "conv", i + 1
        else:
            return None
        node = node[name]
        path.append(name)
    return path, node


def _constant_buffer(key: str, value: np.ndarray, mask_for) -> str | None:
    """Checks a constant buffer; returns an error text when it differs from jaxlic's constant."""
    from jaxlic.entropy.gaussian import SCALE_TABLE

    v = np.asarray(value, np.float64)
    expected = None
    if key.endswith("beta_reparam.pedestal") or key.endswith("gamma_reparam.pedestal"):
        expected = _PEDESTAL
    elif key.endswith("beta_reparam.lower_bound.bound"):
        expected = (1e-6 + _PEDESTAL) ** 0.5
    elif key.endswith("gamma_reparam.lower_bound.bound"):
        expected = _PEDESTAL**0.5
    elif key.endswith("likelihood_lower_bound.bound"):
        expected = 1e-9
    elif key.endswith("lower_bound_scale.bound") or key.endswith("scale_bound"):
        expected = 0.11
    elif key.endswith("entropy_bottleneck.target"):
        t = np.log(2 / 1e-9 - 1)
        expected = np.array([-t, 0.0, t])
    elif key.endswith("scale_table"):
        if v.size == 0:  # never updated: jaxlic uses its own table anyway
            return None
        expected = SCALE_TABLE
    elif key.endswith(".mask"):
        expected = mask_for(key)
        if v.shape != np.shape(expected) or not np.array_equal(v != 0, np.asarray(expected) != 0):
            return f"{key}: context mask differs from jaxlic's"
        return None
    else:
        raise KeyError(key)
    expected = np.asarray(expected, np.float64)
    if v.size != expected.size or not np.allclose(v.reshape(expected.shape), expected, rtol=1e-5, atol=0):
        return (
            f"{key}: {v.ravel()[:4].tolist()} differs from jaxlic's constant {expected.ravel()[:4].tolist()}"
        )
    return None


_CONSTANT_SUFFIXES = (
    "_reparam.pedestal",
    "_reparam.lower_bound.bound",
    "likelihood_lower_bound.bound",
    "lower_bound_scale.bound",
    "scale_bound",
    "entropy_bottleneck.target",
    "scale_table",
    "context_prediction.mask",
)


def _set(tree: dict, path: list[str], value: np.ndarray):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _flat(tree: Mapping, prefix=()) -> dict[tuple, object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray], model_name: str, N: int | None = None, M: int | None = None
) -> dict:
    """Maps a CompressAI state dict onto the params of the matching jaxlic model.

    Args:
      state_dict: ``{key: array}`` as ``model.state_dict()`` of CompressAI (numpy arrays or
        anything ``np.asarray`` accepts).
      model_name: CompressAI model name (``"cheng2020-attn"``, ...) or its jaxlic name.
      N, M: widths; read from the state dict when None.

    Returns:
      The Flax ``params`` dict (numpy float32 leaves) of ``get_model(jaxlic_name, N=N, M=M)``.

    Raises:
      ModelError: listing unknown keys, missing parameters, shape mismatches or constants that
        differ from jaxlic's.
    """
    from jaxlic.layers.context import MASKS
    from jaxlic.layers.deconv import deconv_kernel_to_subpixel

    name = resolve_model_name(model_name)
    n0, m0 = infer_widths(state_dict, name)
    N, M = N or n0, M or m0
    model, expected = _expected_params(name, N, M)
    schedule = model.latent.schedule
    context_first = registry.compressai_model(name).context_first

    def mask_for(key):
        k = int(np.shape(state_dict_n[key])[-1])
        return np.broadcast_to(MASKS[schedule.mask_type](k), np.shape(state_dict_n[key]))

    state_dict_n: dict[str, np.ndarray] = {}
    for k, v in state_dict.items():
        nk = _normalize_key(k)
        if nk in state_dict_n:
            raise ModelError(f"state dict has two spellings of {nk!r}")
        state_dict_n[nk] = np.asarray(v)

    params: dict = {}
    unknown, bad = [], []
    for key, value in state_dict_n.items():
        if key.endswith(_CDF_BUFFERS):
            continue
        if key.endswith(_CONSTANT_SUFFIXES):
            if key.endswith(".mask") and not model.latent.uses_context:
                unknown.append(key)
                continue
            err = _constant_buffer(key, value, mask_for)
            if err:
                bad.append(err)
            continue
        *mods, leaf = key.split(".")
        found = _walk(expected, mods)
        if found is None:
            unknown.append(key)
            continue
        path, node = found
        value = value.astype(np.float32)
        if leaf == "weight" and "kernel" in node:  # Conv2d
            if value.ndim != 4:
                bad.append(f"{key}: expected a 4-D conv weight, got shape {value.shape}")
                continue
            out, path = value.transpose(2, 3, 1, 0), path + ["kernel"]
            if path == ["entropy_parameters_0", "kernel"] and context_first:
                half = out.shape[2] // 2  # CompressAI: [ctx, hyper] -> jaxlic: [hyper, ctx]
                out = np.concatenate([out[:, :, half:], out[:, :, :half]], axis=2)
        elif leaf == "weight" and "conv" in node and "bias" in node:  # ConvTranspose2d (deconv)
            if value.ndim != 4 or value.shape[2:] != (5, 5):
                bad.append(f"{key}: expected a [in, out, 5, 5] deconv weight, got shape {value.shape}")
                continue
            out, _ = deconv_kernel_to_subpixel(value, stride=2, padding=2, output_padding=1)
            path = path + ["conv", "kernel"]
        elif leaf == "gamma" and "gamma" in node:
            out, path = value.T, path + ["gamma"]
        elif leaf in node and not isinstance(node[leaf], Mapping):
            out, path = value, path + [leaf]
        else:
            unknown.append(key)
            continue
        want = _flat(expected).get(tuple(path))
        if want is None:
            unknown.append(key)
        elif tuple(out.shape) != tuple(want):
            bad.append(f"{key}: shape {tuple(value.shape)} does not fit {'/'.join(path)} {tuple(want)}")
        else:
            _set(params, path, np.ascontiguousarray(out, np.float32))

    missing = sorted("/".join(p) for p in _flat(expected) if p not in _flat(params))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown key(s): {_short(sorted(unknown))}")
    if missing:
        problems.append(f"{len(missing)} parameter(s) missing from the checkpoint: {_short(missing)}")
    if bad:
        problems.append("; ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
    if problems:
        raise ModelError(f"checkpoint does not fit {model_name} (N={N}, M={M}): " + "; ".join(problems))
    return params


def _short(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxlic convert-compressai",
        description="Convert a CompressAI checkpoint (.pth/.pth.tar/.npz) into a jaxlic weights file.",
    )
    p.add_argument("checkpoint", help="CompressAI checkpoint file")
    p.add_argument("out", help="jaxlic weights file to write (.msgpack)")
    p.add_argument("--model", required=True, choices=sorted(COMPRESSAI_MODELS), help="CompressAI model name")
    p.add_argument(
        "--quality",
        type=int,
        default=None,
        help="quality index of the checkpoint (checked against CompressAI's widths)",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT")
    return p


def _parse(args):
    if isinstance(args, (list, tuple)):
        return _parser().parse_args(list(args))
    if not hasattr(args, "checkpoint") and hasattr(args, "argv"):
        try:
            return _parser().parse_args(list(args.argv))
        except SystemExit as e:  # --help, or a usage error already printed by argparse
            if e.code:
                raise JaxlicError("invalid arguments for convert-compressai (see --help)") from None
            raise
    return args


def main_convert(args) -> int:
    """``jaxlic convert-compressai CHECKPOINT --model NAME [--quality Q] OUT [--force]``.

    Args:
      args: an ``argparse.Namespace`` with ``checkpoint``, ``model``, ``quality``, ``out``,
        ``force``; or one with ``argv`` (unparsed words); or a list of words.

    Returns:
      0 on success (raises JaxlicError otherwise).
    """
    args = _parse(args)
    from jaxlic import weights as weights_io

    model = args.model
    name = resolve_model_name(model)
    out = os.fspath(args.out)
    if os.path.exists(out) and not getattr(args, "force", False):
        raise JaxlicError(f"{out} exists; pass --force to overwrite it")
    q = args.quality
    published = registry.compressai_model(name).qualities
    ca_name = _JAXLIC_TO_COMPRESSAI[name]
    table = {q: registry.default_widths(name, q) for q in published} or None
    if q is not None and table is not None and q not in table:
        raise ModelError(f"CompressAI publishes {ca_name} at qualities {min(table)}-{max(table)}, not {q}")
    sd = load_checkpoint(args.checkpoint)
    N, M = infer_widths(sd, name)
    if q is not None:
        if table is not None and table[q] != (N, M):
            raise ModelError(
                f"checkpoint has widths N={N}, M={M}, but CompressAI's {ca_name} quality {q} "
                f"uses N={table[q][0]}, M={table[q][1]}: wrong --quality or --model?"
            )
    params = convert_state_dict(sd, name, N, M)
    cfg = registry.get_config(name, q, N=N, M=M)
    with open(args.checkpoint, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    meta = {
        "model": name,
        "quality": int(q or 0),
        "lmbda": registry.LAMBDAS.get(q) if q else None,
        "N": N,
        "M": M,
        "config": cfg.to_dict(),
        "source": {
            "library": "compressai",
            "model": ca_name,
            "checkpoint": os.path.basename(args.checkpoint),
            "sha256": digest,
        },
    }
    weights_io.save(out, params, meta)
    n_params = sum(int(np.prod(np.shape(v))) for v in _flat(params).values())
    print(f"converted {ca_name} (N={N}, M={M}, {n_params:,} parameters) -> {out} as jaxlic model {name!r}")
    return 0


if __name__ == "__main__":  # python -m jaxlic.convert ...
    try:
        sys.exit(main_convert(sys.argv[1:]))
    except JaxlicError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
