"""Conditional discretized Gaussian entropy model (scale / mean-scale hyperprior).

Training path: :func:`gaussian_likelihood` (pure jax). Coding path: 64 integer CDF tables, one per
entry of :data:`SCALE_TABLE`, selected per element by :func:`scale_indexes` and range coded with
:mod:`jaxlic.coding.rangecoder`.

References:
  Ballé et al. 2018, "Variational image compression with a scale hyperprior".
  Minnen et al. 2018, "Joint autoregressive and hierarchical priors for learned image compression"
  (means predicted together with the scales; the caller codes ``round(y - means)``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.coding.tables import IndexedTables
from jaxlic.entropy.quantize import lower_bound

__all__ = [
    "SCALE_TABLE",
    "gaussian_likelihood",
    "scale_indexes",
    "build_tables",
    "encode_gaussian",
    "decode_gaussian",
]

SCALE_MIN, SCALE_MAX, NUM_SCALES = 0.11, 256.0, 64

#: ``[64]`` float32 scales, log-spaced from 0.11 to 256 (CompressAI's default scale table).
SCALE_TABLE: np.ndarray = np.exp(np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), NUM_SCALES)).astype(
    np.float32
)
SCALE_TABLE.setflags(write=False)


def _std_cdf(x):
    # Phi(x) via erfc keeps full relative precision in the lower tail; callers only evaluate the
    # lower tail thanks to the symmetry |y - mu| below.
    return 0.5 * jax.scipy.special.erfc(-x * np.float32(2**-0.5))


def gaussian_likelihood(
    y_hat: jax.Array,
    means: jax.Array,
    scales: jax.Array,
    *,
    scale_bound: float = SCALE_MIN,
    likelihood_bound: float = 1e-9,
) -> jax.Array:
    """Probability of the unit bin around ``y_hat`` under ``N(means, scales^2)``.

    ``P = Phi((0.5 - |y - mu|) / s) - Phi((-0.5 - |y - mu|) / s)``: using ``|y - mu|`` (the upper
    tail by symmetry) keeps both terms in the lower tail where ``erfc`` is accurate.

    Args:
      y_hat: ``[...]`` quantized (or noisy) values.
      means: ``[...]`` broadcastable means.
      scales: ``[...]`` broadcastable standard deviations; lower-bounded by ``scale_bound`` with a
        gradient that can still push them up.
      scale_bound: smallest scale.
      likelihood_bound: smallest returned likelihood (same gradient rule).

    Returns:
      ``[...]`` likelihoods.
    """
    scales = lower_bound(scales, scale_bound)
    values = jnp.abs(y_hat - means)
    upper = _std_cdf((0.5 - values) / scales)
    lower = _std_cdf((-0.5 - values) / scales)
    return lower_bound(upper - lower, likelihood_bound)


def scale_indexes(scales):
    """Table index of each scale: the smallest :data:`SCALE_TABLE` entry ``>= scale``.

    Rule (identical float32 comparisons in numpy and jax): the index is the number of entries of
    ``SCALE_TABLE[:-1]`` that are strictly smaller than ``float32(scale)``. Scales below 0.11 map to
    0, scales above 256 (and +inf, NaN) to 63. This is CompressAI's ``build_indexes`` rule.

    Args:
      scales: numpy or jax array, any shape.

    Returns:
      int32 array of the same kind and shape, values in ``[0, 63]``.
    """
    if isinstance(scales, jax.Array):
        s = scales.astype(jnp.float32)
        s = jnp.where(jnp.isnan(s), jnp.inf, s)
        return jnp.searchsorted(jnp.asarray(SCALE_TABLE[:-1]), s, side="left").astype(jnp.int32)
    s = np.asarray(scales, dtype=np.float32)
    s = np.where(np.isnan(s), np.float32(np.inf), s)
    return np.searchsorted(SCALE_TABLE[:-1], s, side="left").astype(np.int32)


@functools.lru_cache(maxsize=8)
def build_tables(tail_mass: float = 1e-9, precision: int = 16) -> IndexedTables:
    """Integer CDF tables of the discretized Gaussian, one per :data:`SCALE_TABLE` entry.

    Table ``t`` covers the residuals ``[-c_t, c_t]`` with ``c_t = ceil(s_t * Phi^-1(1 - tail/2))``
    (CompressAI's support); the remaining mass goes to the escape symbol. Cached.

    Args:
      tail_mass: probability mass left outside each table's support.
      precision: bits of the CDF total.

    Returns:
      :class:`IndexedTables` with 64 tables.
    """
    from scipy.special import ndtr, ndtri  # pylint: disable=g-import-not-at-top  # lazy: 0.2 s of start-up

    multiplier = -ndtri(tail_mass / 2)
    pmfs, tails, offsets = [], [], []
    for s in SCALE_TABLE.astype(np.float64):
        center = int(np.ceil(s * multiplier))
        values = np.abs(np.arange(-center, center + 1, dtype=np.float64))
        pmfs.append(ndtr((0.5 - values) / s) - ndtr((-0.5 - values) / s))
        tails.append(2 * ndtr(-(center + 0.5) / s))
        offsets.append(-center)
    return IndexedTables.from_pmfs(pmfs, np.array(tails), np.array(offsets), precision)


def encode_gaussian(symbols: np.ndarray, scales: np.ndarray) -> bytes:
    """Range-codes integer residuals ``symbols = round(y - means)`` under ``N(0, scales^2)``.

    Args:
      symbols: int array, any shape.
      scales: float array of the same shape (the table is chosen by :func:`scale_indexes`).

    Returns:
      Compressed bytes.
    """
    symbols = np.asarray(symbols)
    scales = np.asarray(scales)
    if symbols.shape != scales.shape:
        raise ValueError(f"symbols {symbols.shape} and scales {scales.shape} differ in shape")
    return rangecoder.encode_indexed(symbols, scale_indexes(scales), build_tables())


def decode_gaussian(data: bytes, scales: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_gaussian`.

    Args:
      data: the compressed bytes.
      scales: the same scales the encoder used, any shape.

    Returns:
      int32 residuals shaped like ``scales``.

    Raises:
      BitstreamError: if ``data`` is malformed.
    """
    return rangecoder.decode_indexed(data, scale_indexes(np.asarray(scales)), build_tables())
