"""Latent codecs: how the latent y of a hyperprior model is parameterised, ordered and coded.

In the spirit of CompressAI's `latent_codecs` and TFC's entropy models:

* `jaxlic.latent.families`: one conditional entropy model per family — `ScaleGaussian` (Ballé et al.
  2018), `MeanScaleGaussian` (Minnen et al. 2018), `GaussianMixture` (Cheng et al. 2020) — owning
  the parameter split, quantisation, likelihood and host-side coding.
* `jaxlic.latent.schedules`: one object per decoding order — `NoContext`, `Checkerboard` (He et
  al. 2021), `Serial` (Minnen et al. 2018) — owning the training pass, the exact evaluation pass
  and the host encode/decode loop, each written once.
* `jaxlic.latent.codec.LatentCodec`: a family in a schedule; `jaxlic.latent.host.HostCoder`: the
  range coding of (z, y) of a model with its weights.
* `jaxlic.latent.registry`: config values ("scale", "gaussian", "gmm"; "none", "serial",
  "checkerboard") -> classes; `build_latent_codec(context, entropy, K)`.

Attributes are imported lazily, so `jaxlic.latent.registry` can be used without importing JAX.
"""

_LAZY = {
    "EntropyFamily": "families",
    "ScaleGaussian": "families",
    "MeanScaleGaussian": "families",
    "GaussianMixture": "families",
    "ContextSchedule": "schedules",
    "NoContext": "schedules",
    "Checkerboard": "schedules",
    "Serial": "schedules",
    "LatentCodec": "codec",
    "HostCoder": "host",
    "build_latent_codec": "registry",
    "register_family": "registry",
    "register_schedule": "registry",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"jaxlic.latent.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'jaxlic.latent' has no attribute {name!r}")


__all__ = list(_LAZY)
