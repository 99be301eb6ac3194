"""JAX's persistent compilation cache for the command line: compile each network once per machine.

Every ``jaxlic compress`` / ``decompress`` is a new process, and without a cache each one traces
and compiles its networks again (about 1.7 s of a 1-megapixel photo's 5.5 s encode). With the
cache, XLA executables are written to disk by the first process and read back by the next ones
that run the same computation (same model, same padded image size, same jax/XLA version and
flags: JAX puts all of these into the cache key, so a stale or foreign entry is never used).

Where (first that applies):
  1. ``JAXLIC_NO_COMPILE_CACHE=1`` (or ``true``/``yes``): no cache at all;
  2. the ``path`` argument of :func:`enable`;
  3. ``$JAX_COMPILATION_CACHE_DIR`` (JAX's own variable);
  4. ``$XDG_CACHE_HOME/jaxlic/xla/<host>``, else ``~/.cache/jaxlic/xla/<host>``, where ``<host>``
     is a short hash of the machine type and its CPU's instruction-set flags: XLA:CPU compiles
     for the host's instruction set and JAX's cache key does not say which, so a home folder
     shared by different machines must not hand one machine's executables to another.

JAX's default thresholds would skip most of our executables (it caches only those that took
more than a second to compile), so :func:`enable` lowers them: every executable is cached.

The cache spares a new process XLA's compilation, not the tracing before it; :func:`enable` also
turns on :mod:`jaxlic.warm_start` in the same folder, which stores whole executables (and the
models' parameter shapes), so that a new process neither traces nor compiles what an earlier one
did.
"""

from __future__ import annotations

import os
import pathlib

from jaxlic.warm_start import host_tag  # the machine's tag; warm_start keys its entries by it too

__all__ = ["enable", "default_dir", "host_tag", "DISABLE_ENV"]

DISABLE_ENV = "JAXLIC_NO_COMPILE_CACHE"


def default_dir() -> pathlib.Path:
    """The cache folder used when no path is given (see the module docstring)."""
    explicit = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "jaxlic" / "xla" / host_tag()


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def enable(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Turns on JAX's persistent compilation cache; call before the first compilation.

    Args:
      path: cache folder; default :func:`default_dir`.

    Returns:
      The cache folder, or None when the cache is off (``JAXLIC_NO_COMPILE_CACHE`` set, or the
      folder cannot be created: caching is an optimisation, never a reason to fail).
    """
    if _disabled():
        return None
    folder = pathlib.Path(path).expanduser() if path is not None else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None

    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    from jaxlic import warm_start

    warm_start.enable(folder)
    return folder
