"""What a new ``jaxlic`` process reuses from earlier ones, so that its first image is not slow.

Every command-line call is a fresh process. JAX's persistent cache (:mod:`jaxlic.compile_cache`)
saves it XLA's compilation, but not the tracing and lowering that come before (a flax model is
traced op by op in Python, once per jitted function and padded image size) nor the trace of the
model's initialisation that ``jaxlic.zoo.variable_shapes`` uses to check a weights file. For the
six executables of a 1-megapixel photo, tracing and lowering took 4.7 s and reading the cache
0.8 s (2-core VM shared with other work; ``jaxlic compress --timings`` shows such a split). This
module stores, next to that cache:

* **executables** (:func:`install`): each jitted network of a codec (analysis, synthesis,
  hyper-synthesis, the latent codec's parameter functions, on the float or the exact path) is
  compiled once per argument shapes and serialised with ``jax.experimental.serialize_executable``
  into ``<cache>/executables/<module key>.bin``; ``<function>-<key>.ref`` names the blob of a
  function, config and signature. A new process reads the ref, loads the executable and calls it:
  no tracing, lowering or compiling. Images of one padded size (a multiple of 64) share one
  executable per function, in a process and across processes.
* **parameter shapes** (:func:`cached_shapes`): the ``ShapeDtypeStruct`` tree of a model config,
  as ``<cache>/shapes/<key>.json``.

A ref's key and a shapes key are SHA-256s of everything that decides the entry: the function's
name, the model config, the argument tree and shapes, jax/jaxlib versions, ``XLA_FLAGS``, the x64
and matmul-precision settings, the backend, the host's instruction set (:func:`host_tag`)
and :func:`code_digest`, a hash of the jaxlic files a network can run (not of the weights, which
are arguments, nor of the host-only modules, ``_HOST_ONLY``). An entry is therefore never used by
other code. After an edit of jaxlic the function is traced once more, and the hash of its lowered
module (with the same versions, flags and host) finds the blob again when the edit left the
network alone; otherwise it is compiled. Such compiles go past JAX's persistent cache: an
executable read from that cache serialises incompletely on XLA:CPU (jax 0.10), so only fresh ones
are stored, and JAX's cache does not hold a second copy. A damaged blob is compiled again; a
failure to write is ignored: stored work is an optimisation, never a reason to fail. Entries are
written atomically (temporary file, rename), so concurrent processes are safe, and the least
recently used blobs are deleted beyond :data:`MAX_BYTES` (``JAXLIC_EXECUTABLES_MAX_MB``, default
2048).

Only processes that called :func:`enable` (the CLI, through ``compile_cache.enable()``'s folder)
read or write anything; library users and the tests get plain ``jax.jit``. ``JAXLIC_NO_WARM_START=1``
turns it off (JAX's cache stays on; ``JAXLIC_NO_COMPILE_CACHE=1`` turns off both).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pathlib
import pickle
import platform
import secrets
import time

__all__ = ["enable", "folder", "install", "cached_shapes", "code_digest", "stats", "MAX_BYTES", "DISABLE_ENV"]

DISABLE_ENV = "JAXLIC_NO_WARM_START"

_PACKAGE = pathlib.Path(__file__).resolve().parent
#: Parts of the package that no jitted network runs (host-side tools, the command line, the
#: evaluation), left out of :func:`code_digest` so that editing them keeps the stored entries.
#: Everything else counts, the models' and layers' code and the exact path's tables included.
_HOST_ONLY = (
    "pretrained",
    "__pycache__",
    "evaluation",
    "cli.py",
    "batch.py",
    "server.py",
    "image_io.py",
    "compile_cache.py",
    "warm_start.py",  # a blob it cannot read is compiled again
    "convert.py",
    "ratecontrol.py",
    "metrics.py",
)

MAX_BYTES = int(float(os.environ.get("JAXLIC_EXECUTABLES_MAX_MB", "2048")) * 2**20)

_state: dict = {"folder": None}
_stats: dict = {}


def _reset_stats() -> None:
    _stats.update(
        loaded=0, load_s=0.0, lowered=0, compiled=0, compile_s=0.0, stored=0, shapes_hit=0, shapes_miss=0
    )


_reset_stats()


def stats() -> dict:
    """Counters of this process: executables ``loaded`` (and ``load_s``), functions ``lowered``
    (traced: no ref, or a ref to a missing blob), ``compiled`` (and ``compile_s``: tracing +
    lowering + compiling), blobs ``stored``; ``shapes_hit``/``shapes_miss``."""
    return dict(_stats)


def enable(cache_dir: str | os.PathLike | None) -> pathlib.Path | None:
    """Stores and reuses executables and shapes under ``cache_dir`` (None: turns it off).

    Returns:
      The folder in use, or None (also when ``JAXLIC_NO_WARM_START`` is set).
    """
    if cache_dir is None or os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        _state["folder"] = None
        return None
    path = pathlib.Path(cache_dir)
    try:
        for sub in ("executables", "shapes"):
            (path / sub).mkdir(parents=True, exist_ok=True)
    except OSError:
        _state["folder"] = None
        return None
    _state["folder"] = path
    return path


def folder() -> pathlib.Path | None:
    """The folder :func:`enable` set, or None."""
    return _state["folder"]


@functools.cache
def code_digest() -> str:
    """SHA-256 of the installed ``jaxlic`` package's files, but the shipped weights and the
    host-only modules (``_HOST_ONLY``)."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in _PACKAGE.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and not set(p.relative_to(_PACKAGE).parts) & set(_HOST_ONLY)
    )
    for p in files:
        h.update(p.relative_to(_PACKAGE).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def host_tag() -> str:
    """12 hex digits naming the machine type and CPU features (Linux: the ``flags`` of /proc/cpuinfo)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    text = (
        f"{platform.system()} {platform.machine()} {platform.processor()} {' '.join(sorted(flags.split()))}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def _environment(code: bool = True) -> str:
    """What decides the executable a jitted function compiles to: the code (optionally; a lowered
    module's text stands for it), the versions, flags, backend and host."""
    import jax
    import jaxlib

    device = jax.devices()[0]
    return "|".join(
        [
            f"jax {jax.__version__} jaxlib {jaxlib.__version__}",
            f"{device.platform} {device.device_kind} {device.client.platform_version}",
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}",
            f"x64={jax.config.jax_enable_x64} matmul={jax.config.jax_default_matmul_precision}",
            f"host={host_tag()}",
            f"code={code_digest() if code else '-'}",
        ]
    )


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _write_atomic(path: pathlib.Path, data: bytes) -> bool:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return False


def _trim(directory: pathlib.Path, max_bytes: int) -> None:
    """Deletes the least recently used entries until the folder holds at most ``max_bytes``."""
    try:
        entries = [(p.stat(), p) for p in directory.iterdir() if p.suffix == ".bin"]
    except OSError:
        return
    total = sum(s.st_size for s, _ in entries)
    for s, p in sorted(entries, key=lambda e: e[0].st_mtime):
        if total <= max_bytes:
            break
        try:
            p.unlink()
            total -= s.st_size
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# parameter shapes


def cached_shapes(config, compute):
    """``compute()`` (a pytree of ``jax.ShapeDtypeStruct``, nested dicts), read from the folder
    when an earlier process stored it for this ``config`` and code; else computed and stored."""
    base = folder()
    if base is None:
        return compute()
    import jax
    import numpy as np

    path = base / "shapes" / f"{_key('shapes', repr(config), _environment())}.json"
    try:
        flat = json.loads(path.read_text())
        tree: dict = {}
        for key, (shape, dtype) in flat.items():
            node = tree
            *parents, leaf = key.split("/")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))
        _stats["shapes_hit"] += 1
        return tree
    except (OSError, ValueError, TypeError, KeyError):
        pass
    shapes = compute()
    _stats["shapes_miss"] += 1
    flat = {}
    for path_keys, leaf in jax.tree_util.tree_leaves_with_path(shapes):
        names = [str(getattr(k, "key", k)) for k in path_keys]
        if any("/" in n for n in names):
            return shapes  # not representable as "a/b/c": keep it uncached
        flat["/".join(names)] = [list(leaf.shape), np.dtype(leaf.dtype).name]
    _write_atomic(path, json.dumps(flat).encode())
    return shapes


# ----------------------------------------------------------------------------------------------
# executables


class StoredFunction:
    """A jitted function whose executables are loaded from, or compiled into, the folder.

    Called like the jitted function it wraps. Per argument signature (tree structure, shapes,
    dtypes) it holds one executable: from memory; else through ``<name>-<key>.ref`` (the key of
    this function, config, signature, environment and code) from the blob it names; else the
    function is lowered (traced), and the blob of the lowered module's text is loaded when an
    earlier process stored it (an edit of jaxlic that left this network alone) or compiled,
    stored and named by a new ref.
    """

    def __init__(self, fn, name: str, context: str):
        self.fn, self.name, self.context = fn, name, context
        self._executables: dict = {}

    def lower(self, *args):  # what a caller of the jitted function may use
        return self.fn.lower(*args)

    def __call__(self, *args, **kwargs):
        import jax

        if kwargs:  # not a call the codec makes: plain jit
            return self.fn(*args, **kwargs)
        leaves, treedef = jax.tree_util.tree_flatten(args)
        signature = (
            treedef,
            tuple(
                (getattr(x, "shape", ()), str(getattr(x, "dtype", type(x))), getattr(x, "weak_type", False))
                for x in leaves
            ),
        )
        compiled = self._executables.get(signature)
        if compiled is None:
            compiled = self._executables[signature] = self._load_or_compile(args, signature)
        return compiled(*args)

    def _load_or_compile(self, args, signature):
        import jax

        base = folder()
        if base is None:
            return self.fn.lower(*args).compile()
        directory = base / "executables"
        in_tree = jax.tree_util.tree_structure((args, {}))  # what the executable will be called with
        key = _key(self.name, self.context, str(signature[0]), repr(signature[1]), _environment())
        ref = directory / f"{self.name}-{key}.ref"
        try:
            blob = directory / f"{ref.read_text().strip()}.bin"
        except OSError:
            blob = None
        compiled = _load(blob, in_tree) if blob is not None else None
        if compiled is not None:
            return compiled
        t0 = time.perf_counter()
        lowered = self.fn.lower(*args)
        _stats["lowered"] += 1
        # The argument tree belongs in the key: jit drops unused arguments from the module text,
        # and an executable only accepts the tree it was compiled with.
        module = _key("module", lowered.as_text(), str(signature[0]), _environment(code=False))
        blob = directory / f"{module}.bin"
        compiled = _load(blob, in_tree)
        if compiled is None:
            with _fresh_compilation():
                compiled = lowered.compile()
            _stats["compiled"] += 1
            _stats["compile_s"] += time.perf_counter() - t0
            _store(blob, compiled)
        _write_atomic(ref, blob.stem.encode())
        return compiled


def _load(blob: pathlib.Path, expected_tree):
    """The executable stored in ``blob``, or None (missing, truncated, foreign, or compiled for
    another argument tree than ``expected_tree``: an entry an older jaxlic keyed without it)."""
    from jax.experimental import serialize_executable

    if not blob.is_file():
        return None
    t0 = time.perf_counter()
    try:
        payload, in_tree, out_tree = pickle.loads(blob.read_bytes())
        if in_tree != expected_tree:
            return None
        compiled = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception:
        return None
    _stats["loaded"] += 1
    _stats["load_s"] += time.perf_counter() - t0
    try:
        os.utime(blob)  # least recently used goes first (see _trim)
    except OSError:
        pass
    return compiled


def _store(blob: pathlib.Path, compiled) -> None:
    from jax.experimental import serialize_executable

    try:
        data = pickle.dumps(serialize_executable.serialize(compiled))
    except Exception:  # a backend without serialisation: kept in memory only
        return
    if _write_atomic(blob, data):
        _stats["stored"] += 1
        _trim(blob.parent, MAX_BYTES)


@contextlib.contextmanager
def _fresh_compilation():
    """Compiles past JAX's persistent cache: on XLA:CPU (jax 0.10) an executable read from that
    cache serialises without its compiled kernels ("Function ... not found" when the copy runs),
    so only freshly compiled executables are stored. Such a compile is then not written to JAX's
    cache either: the executable lives in one place."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    if not enabled:
        yield
        return
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
        compilation_cache.reset_cache()


def _jitted(value) -> bool:
    return callable(value) and hasattr(value, "lower") and not isinstance(value, StoredFunction)


def install(codec):
    """Routes a codec's jitted networks through stored executables (when :func:`enable` is on).

    Wraps every jitted function held by the codec and by its host coder (attributes, and tuples
    of them), in place; returns the codec. Without a folder nothing changes.
    """
    if folder() is None or getattr(codec, "_warm_start", False):
        return codec
    context = repr(getattr(codec, "cfg", type(codec).__name__))
    holders = [("codec", codec)]
    holders += [(f"codec.{k}", v) for k, v in vars(codec).items() if type(v).__module__.startswith("jaxlic.")]
    for prefix, obj in holders:
        for attr, value in list(vars(obj).items()):
            name = f"{prefix}.{attr}".replace("codec._coder", "coder").replace("codec.", "").strip("._")
            if _jitted(value):
                setattr(obj, attr, StoredFunction(value, name, context))
            elif isinstance(value, tuple) and value and all(_jitted(v) for v in value):
                setattr(
                    obj, attr, tuple(StoredFunction(v, f"{name}{i}", context) for i, v in enumerate(value))
                )
    codec._warm_start = True
    return codec
