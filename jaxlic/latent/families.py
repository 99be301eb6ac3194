"""Conditional entropy families of the latent y: parameter split, quantisation, likelihood, coding.

One object per family owns everything that depends on how y's distribution is parameterised:

* how the entropy-parameter network's output channels map to named parameters (`split`);
* the parameters exactly as the range coder sees them (`coding_params`);
* where y is quantised: around the point the coder rounds at (`offset`; the quantisation itself,
  noise, straight-through rounding or rounding, is `jaxlic.entropy.quantize.quantize`);
* the likelihood used for the rate term (`likelihood`);
* host-side coding of a set of positions (`encode` / `decode`) and, where the family allows it,
  of one position inside a shared stream (`encode_step` / `decode_step`, the serial schedule).

Families:
  * `ScaleGaussian`: zero-mean Gaussian, one scale per element (Ballé et al. 2018, "Variational
    image compression with a scale hyperprior").
  * `MeanScaleGaussian`: Gaussian with predicted mean and scale (Minnen et al. 2018, "Joint
    autoregressive and hierarchical priors for learned image compression"); y is coded as
    round(y - mean) and decoded as that integer plus the mean.
  * `GaussianMixture`: K-component Gaussian mixture (Cheng et al. 2020, "Learned Image Compression
    with Discretized Gaussian Mixture Likelihoods and Attention Modules"); y is coded as round(y),
    under parameters snapped onto the coder's grids (`jaxlic.entropy.mixture.quantize_params`).

The host-side methods use numpy float32 operations only, identical on the encoder and the decoder,
so that the decoded latents match bit for bit in any process.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.entropy import gaussian, mixture
from jaxlic.entropy.quantize import Rounding, quantize
from jaxlic.latent import indices

__all__ = [
    "EntropyFamily",
    "ScaleGaussian",
    "MeanScaleGaussian",
    "GaussianMixture",
]


@dataclasses.dataclass(frozen=True)
class EntropyFamily:
    """Base class of the conditional entropy families (see the module docstring).

    Parameter dicts hold arrays of y's shape `[..., M]` (the mixture: `[..., M, K]`). On the host,
    `encode` / `decode` take parameters selected at n positions: arrays `[n, M]` (or `[n, M, K]`)
    as returned by `coding_params`.
    """

    #: Whether positions can be coded one at a time into a shared stream (the serial schedule).
    stepwise: ClassVar[bool] = False

    @property
    def params_per_channel(self) -> int:
        """Entropy parameters predicted per latent channel."""
        raise NotImplementedError

    # ---------------------------------------------------------------- jax (traced in the model)
    def split(self, raw) -> dict:
        """Raw network output `[..., M * params_per_channel]` -> named parameters."""
        raise NotImplementedError

    def coding_params(self, p: dict) -> dict:
        """The parameters exactly as the range coder sees them (identity unless overridden)."""
        return p

    def offset(self, p: dict):
        """The point y is rounded around (0 for families that code round(y))."""
        return None

    def from_accumulator(self, acc, bits) -> dict:
        """Exact path: the integer parameters from the entropy-parameter network's int32
        accumulator `acc` [..., C] holding ``value * 2^bits`` (`bits` [C], per channel).

        Keys: "level" (scale level of `jaxlic.entropy.exact`'s grid), "mean64" (means in units
        of 1/64), "weight256" (mixture weights summing to 256), as the family has them.
        """
        raise NotImplementedError

    def quantize(self, y, p: dict, rounding: Rounding, rng=None):
        """Quantised y, as the coder quantises it: `jaxlic.entropy.quantize.quantize` around the
        family's `offset`.

        Args:
          y: `[..., M]` latents.
          p: parameters from `split` (only the means are used, where the family has them).
          rounding: "noise" (additive uniform noise, needs `rng`), "round" (the coder's values),
            "ste" (the same values, straight-through gradient) or a function `r(v)` applied to the
            offset-free values (e.g. the soft rounding of `jaxlic.models.refine`).
          rng: PRNG key for "noise".

        Returns:
          Array shaped like `y`.
        """
        noise = isinstance(rounding, str) and rounding == "noise"
        return quantize(y, rounding, offset=None if noise else self.offset(p), rng=rng)

    def likelihood(self, y_q, p: dict, *, coded: bool):
        """Probability of the unit bin around each `y_q` (rate = -log2 of it).

        Args:
          y_q: quantised (or noisy) latents `[..., M]`.
          p: parameters from `split`.
          coded: use the parameters as the coder sees them (`coding_params`), so that the
            estimate matches the real stream; False during training.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- host (numpy)
    def encode(self, y_sel: np.ndarray, p: dict) -> tuple[bytes, np.ndarray]:
        """Codes latents `y_sel` [n, M]; returns the bytes and the values the decoder will get."""
        raise NotImplementedError

    def decode(self, data: bytes, p: dict) -> np.ndarray:
        """Inverse of `encode`: float32 values [n, M]."""
        raise NotImplementedError

    def encode_step(self, stream: rangecoder.StreamEncoder, y_vec: np.ndarray, p: dict) -> np.ndarray:
        """Codes one position's `y_vec` [M] into `stream`; returns the decoded values [M]."""
        raise NotImplementedError(f"{type(self).__name__} cannot be coded one position at a time")

    def decode_step(self, stream: rangecoder.StreamDecoder, p: dict) -> np.ndarray:
        """Inverse of `encode_step`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be coded one position at a time")


@dataclasses.dataclass(frozen=True)
class _Gaussian(EntropyFamily):
    """Discretised Gaussian coded with the 64 scale tables of `jaxlic.entropy.gaussian`."""

    stepwise: ClassVar[bool] = True

    def _means(self, p: dict):
        if "mean64" in p:  # exact path: integers in units of 1/64
            return indices.mean_values(p["mean64"])
        return p.get("means")

    def _scales(self, p: dict):
        return indices.scale_values(p["level"]) if "level" in p else p["scales"]

    def from_accumulator(self, acc, bits):
        parts = self.split(acc)
        pbits = self.split(indices.broadcast_bits(bits, acc))
        out = {"level": indices.scale_level(parts["scales"], pbits["scales"])}
        if "means" in parts:
            out["mean64"] = indices.mean_index(parts["means"], pbits["means"])
        return out

    def offset(self, p: dict):
        return self._means(p)

    def likelihood(self, y_q, p: dict, *, coded: bool):
        means = self._means(p)
        zero = jnp.zeros_like(y_q)
        return gaussian.gaussian_likelihood(y_q, zero if means is None else means, self._scales(p))

    def encode(self, y_sel, p):
        means = self._means(p)
        if means is None:
            means = np.zeros_like(y_sel)
        sym = np.round(y_sel - means).astype(np.int32)
        if "level" in p:
            data = indices.entropy().encode_gaussian(sym, p["level"])
        else:
            data = gaussian.encode_gaussian(sym, p["scales"])
        return data, sym.astype(np.float32) + means

    def decode(self, data, p):
        if "level" in p:
            values = indices.entropy().decode_gaussian(data, np.asarray(p["level"])).astype(np.float32)
        else:
            values = gaussian.decode_gaussian(data, p["scales"]).astype(np.float32)
        means = self._means(p)
        return values if means is None else values + means

    def _step_args(self, p, m):
        if "level" in p:
            raise NotImplementedError("the exact path codes no serial schedule")
        means = self._means(p)
        means = np.zeros(m, np.float32) if means is None else np.asarray(means).reshape(m)
        return means, gaussian.scale_indexes(np.asarray(p["scales"]).reshape(m)), gaussian.build_tables()

    def encode_step(self, stream, y_vec, p):
        means, idx, tables = self._step_args(p, y_vec.shape[-1])
        sym = np.round(y_vec - means).astype(np.int32)
        stream.encode_indexed(sym, idx, tables)
        return sym.astype(np.float32) + means

    def decode_step(self, stream, p):
        m = np.shape(p["scales"])[-1]
        means, idx, tables = self._step_args(p, m)
        return stream.decode_indexed(idx, tables).astype(np.float32) + means


@dataclasses.dataclass(frozen=True)
class ScaleGaussian(_Gaussian):
    """Zero-mean Gaussian, parameters `{"scales"}`; codes round(y)."""

    @property
    def params_per_channel(self) -> int:
        return 1

    def split(self, raw):
        return {"scales": raw}


@dataclasses.dataclass(frozen=True)
class MeanScaleGaussian(_Gaussian):
    """Mean-scale Gaussian, parameters `{"scales", "means"}`; codes round(y - means)."""

    @property
    def params_per_channel(self) -> int:
        return 2

    def split(self, raw):
        scales, means = jnp.split(raw, 2, axis=-1)  # CompressAI's order: scales, then means
        return {"scales": scales, "means": means}


@dataclasses.dataclass(frozen=True)
class GaussianMixture(EntropyFamily):
    """K-component Gaussian mixture, parameters `{"logits", "means", "scales"}` of `[..., M, K]`.

    Codes round(y) under the snapped parameters `{"weights", "means", "scales"}`.

    Attributes:
      K: mixture components.
    """

    K: int = 3

    @property
    def params_per_channel(self) -> int:
        return 3 * self.K

    def split(self, raw):
        logits, means, scales = jnp.split(raw, 3, axis=-1)
        shape = raw.shape[:-1] + (raw.shape[-1] // self.params_per_channel, self.K)
        return {
            "logits": logits.reshape(shape),
            "means": means.reshape(shape),
            "scales": scales.reshape(shape),
        }

    def coding_params(self, p):
        if "level" in p:  # exact path: already integers
            return p
        w, m, s = mixture.quantize_params(p["logits"], p["means"], p["scales"])
        return {"weights": w, "means": m, "scales": s}

    def from_accumulator(self, acc, bits):
        parts = self.split(acc)
        pbits = self.split(indices.broadcast_bits(bits, acc))
        return {
            "weight256": indices.mixture_weights(parts["logits"], pbits["logits"]),
            "mean64": indices.mean_index(parts["means"], pbits["means"]),
            "level": indices.scale_level(parts["scales"], pbits["scales"]),
        }

    def likelihood(self, y_q, p, *, coded):
        if "level" in p:  # exact path: the grid values of the integer parameters
            w = p["weight256"].astype(jnp.float32) * np.float32(1 / 256)
            means, scales = indices.mean_values(p["mean64"]), indices.scale_values(p["level"])
            return mixture.mixture_likelihood(y_q, jnp.log(w), means, scales)
        if coded:
            q = self.coding_params(p)
            return mixture.mixture_likelihood(y_q, jnp.log(q["weights"]), q["means"], q["scales"])
        return mixture.mixture_likelihood(y_q, p["logits"], p["means"], p["scales"])

    def _rows(self, p):
        k = self.K
        return (p["weights"].reshape(-1, k), p["means"].reshape(-1, k), p["scales"].reshape(-1, k))

    def _int_rows(self, p):
        k = self.K
        return tuple(np.asarray(p[key]).reshape(-1, k) for key in ("weight256", "mean64", "level"))

    def encode(self, y_sel, p):
        sym = np.round(y_sel).astype(np.int32)
        if "level" in p:
            return indices.entropy().encode_mixture(sym.reshape(-1), *self._int_rows(p)), sym.astype(
                np.float32
            )
        return mixture.encode_mixture(sym.reshape(-1), *self._rows(p)), sym.astype(np.float32)

    def decode(self, data, p):
        if "level" in p:
            return (
                indices.entropy()
                .decode_mixture(data, *self._int_rows(p))
                .astype(np.float32)
                .reshape(np.shape(p["level"])[:-1])
            )
        sym = mixture.decode_mixture(data, *self._rows(p))
        return sym.reshape(p["means"].shape[:-1]).astype(np.float32)
