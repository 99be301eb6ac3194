"""jaxlic: learned image compression in JAX/Flax with real range-coded bitstreams.

Public entry points:
  * `jaxlic.zoo.load(name, quality, weights)` -> a `Codec` with `compress`/`decompress`.
  * `jaxlic.models.get_model(name, **overrides)` -> a Flax module (`forward_train`, `forward_eval`).
  * `jaxlic.entropy`, `jaxlic.coding`: entropy models, range coder and bitstream container.
"""

__version__ = "0.1.0"

from jaxlic.errors import BitstreamError, ImageError, JaxlicError, ModelError

_LAZY = {
    "Codec": ("jaxlic.models.codec", "Codec"),
    "Compressor": ("jaxlic.models.compressor", "Compressor"),
    "ModelConfig": ("jaxlic.models.config", "ModelConfig"),
    "get_model": ("jaxlic.models.registry", "get_model"),
    "list_models": ("jaxlic.models.registry", "list_models"),
    "load": ("jaxlic.zoo", "load"),
    "rd_loss": ("jaxlic.losses", "rd_loss"),
}


def __getattr__(name):
    # Lazy so that `import jaxlic` (and the CLI's error paths) do not pay for importing JAX.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("entropy", "coding", "layers", "models", "zoo", "weights", "losses", "metrics", "image_io"):
        import importlib

        return importlib.import_module(f"jaxlic.{name}")
    raise AttributeError(f"module 'jaxlic' has no attribute {name!r}")


__all__ = ["BitstreamError", "ImageError", "JaxlicError", "ModelError", *_LAZY]
