"""Discretized Gaussian mixture entropy model (K components per latent element).

Cheng et al. 2020, "Learned Image Compression with Discretized Gaussian Mixture Likelihoods and
Attention Modules": ``P(y) = sum_k w_k [Phi((y + 1/2 - mu_k) / s_k) - Phi((y - 1/2 - mu_k) / s_k)]``
with ``w = softmax(logits)``. Built on the hyperprior of Ballé et al. 2018 ("Variational image
compression with a scale hyperprior") and the mean-scale/context model of Minnen et al. 2018.

Encoder and decoder must derive *identical* integer CDFs. The parameters are therefore snapped
onto fixed grids by :func:`quantize_params` with operations that are exact in IEEE arithmetic
(integer table lookups, multiplications by powers of two, comparisons), so numpy and jax give
bit-identical grid values:

* weights: logit differences to the largest logit are rounded to 1/16 (clamped to 16), mapped
  through a fixed integer table of ``2**20 exp(-d)``, normalised in integers to multiples of 1/256
  (each at least 1/256, the sum exactly 256/256);
* means: multiples of 1/64 in ``[-2**17, 2**17]``;
* scales: the nearest (geometric midpoint rule) of 256 log-spaced values in ``[0.11, 256]``.

The model uses the snapped parameters for its rate estimate too, so estimate and coder agree.

Coding (host numpy, :mod:`jaxlic.entropy.supports`, shared with the integer coder of
:mod:`jaxlic.entropy.exact`): per element the support is ``[min_k (floor(mu_k) - ceil(4 s_k)),
max_k (floor(mu_k) + 1 + ceil(4 s_k))]`` (integer arithmetic only), widened to one of a few bucket
widths (at most 1024; wider supports are centred on the mixture mean) so elements of a bucket share
one ``[n, width + 1]`` probability array; values outside the support are escaped and coded
losslessly. Integer CDFs have 16-bit precision, no zero frequency, and are passed to
``constriction`` as exact dyadic float32 probabilities.
The Gaussian CDF at the bin edges is read from a lazily built table indexed by (scale level,
1/64 fraction of the mean, integer offset): the bin edges ``y - 1/2 - mu`` of grid-valued means are
always ``integer - (f + 32) / 64``, so no ``ndtr`` is evaluated per element. Elements are processed
bucket by bucket in chunks of bounded size, never as a dense ``[N, 1024]`` table.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.entropy import supports
from jaxlic.entropy.gaussian import _std_cdf
from jaxlic.entropy.quantize import lower_bound

__all__ = [
    "SCALE_GRID",
    "MEAN_STEP",
    "WEIGHT_STEP",
    "mixture_likelihood",
    "quantize_params",
    "encode_mixture",
    "decode_mixture",
]

SCALE_MIN, SCALE_MAX, NUM_SCALE_LEVELS = 0.11, 256.0, 256
#: ``[256]`` float32 scale grid, log-spaced in ``[0.11, 256]``.
SCALE_GRID: np.ndarray = np.exp(np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), NUM_SCALE_LEVELS)).astype(
    np.float32
)
SCALE_GRID.setflags(write=False)
# Geometric midpoints; a scale maps to the number of midpoints strictly below it.
_SCALE_MIDS = np.sqrt(SCALE_GRID[:-1].astype(np.float64) * SCALE_GRID[1:]).astype(np.float32)
_MIDS_EXT = np.concatenate([[-np.inf], _SCALE_MIDS, [np.inf]]).astype(np.float32)

MEAN_RES = 64
MEAN_STEP = 1.0 / MEAN_RES
_MEAN_MAX_INT = 2**23  # |mean| <= 2**17, exactly representable on the 1/64 grid in float32

WEIGHT_RES = 256
WEIGHT_STEP = 1.0 / WEIGHT_RES
_LOGIT_RES, _LOGIT_RANGE = 16, 16
# 2**20 exp(-j/16), at least 1 so that normalisation never divides by zero.
_EXP_TABLE = np.maximum(
    np.rint(2.0**20 * np.exp(-np.arange(_LOGIT_RES * _LOGIT_RANGE + 1) / _LOGIT_RES)), 1
).astype(np.int32)
_MAX_K = 16

PRECISION = 16
SUPPORT_STDS = 4.0  # support half-width in scales
MAX_WIDTH = supports.MAX_WIDTH
_CHUNK_ENTRIES = 1 << 19  # rows * (width + 1) per chunk: bounds the working memory (~30 MB)
_TABLE_STDS = 5.0  # the CDF table of a scale level spans +-5 scales; beyond, exactly 0 or 1
_TABLE_PAD = 64  # minimum half-length of a table row (fewer rows need clipping)


# ------------------------------------------------------------------------------ likelihood


def mixture_likelihood(
    y_hat: jax.Array,
    weight_logits: jax.Array,
    means: jax.Array,
    scales: jax.Array,
    *,
    scale_bound: float = SCALE_MIN,
    likelihood_bound: float = 1e-9,
) -> jax.Array:
    """Probability of the unit bin around ``y_hat`` under the K-component Gaussian mixture.

    Args:
      y_hat: ``[...]`` quantized (or noisy) values.
      weight_logits: ``[..., K]`` mixture logits (``w = softmax``; pass ``log(w)`` for weights).
      means: ``[..., K]`` component means.
      scales: ``[..., K]`` component scales, lower-bounded by ``scale_bound`` (gradient can push up).
      scale_bound: smallest scale.
      likelihood_bound: smallest returned likelihood.

    Returns:
      ``[...]`` likelihoods.
    """
    w = jax.nn.softmax(weight_logits, axis=-1)
    scales = lower_bound(scales, scale_bound)
    values = jnp.abs(y_hat[..., None] - means)  # upper-tail symmetry: both terms in the lower tail
    p = _std_cdf((0.5 - values) / scales) - _std_cdf((-0.5 - values) / scales)
    return lower_bound(jnp.sum(w * p, axis=-1), likelihood_bound)


# ------------------------------------------------------------------------- parameter grids


def _snap_weights(xp, weight_logits):
    k = weight_logits.shape[-1]
    if k > _MAX_K:
        raise ValueError(f"at most {_MAX_K} mixture components are supported, got {k}")
    # NaN counts as -inf and infinities as huge finite logits, so the differences stay finite
    # (numpy and XLA disagree on how max treats NaN).
    big = np.float32(np.finfo(np.float32).max / 4)
    lg = weight_logits.astype(xp.float32)
    lg = xp.clip(xp.where(xp.isnan(lg), -big, lg), -big, big)
    d = xp.max(lg, axis=-1, keepdims=True) - lg
    j = xp.round(xp.clip(d, 0, _LOGIT_RANGE) * np.float32(_LOGIT_RES)).astype(xp.int32)
    e = xp.asarray(_EXP_TABLE)[j]
    total = xp.sum(e, axis=-1, keepdims=True)
    q = xp.maximum((e * WEIGHT_RES + total // 2) // total, 1)
    first_max = xp.arange(k) == xp.argmax(q, axis=-1)[..., None]
    q = q + first_max * (WEIGHT_RES - xp.sum(q, axis=-1, keepdims=True))
    return q.astype(xp.float32) * np.float32(WEIGHT_STEP)


def _mean_ints(xp, means):
    """Means in units of 1/64 (float32 integers)."""
    m = xp.round(means.astype(xp.float32) * np.float32(MEAN_RES))
    return xp.clip(xp.where(xp.isnan(m), 0, m), -_MEAN_MAX_INT, _MEAN_MAX_INT)


def _scale_levels(xp, scales):
    """Index into :data:`SCALE_GRID`: the number of geometric midpoints strictly below the scale.

    NaN counts as +inf. The numpy path guesses the level from a logarithm and then applies the same
    float32 comparisons as the jax path's ``searchsorted``, so both give identical integers.
    """
    s = scales.astype(xp.float32)
    s = xp.where(xp.isnan(s), np.float32(np.inf), s)
    if xp is not np:
        return xp.searchsorted(xp.asarray(_SCALE_MIDS), s, side="left")
    step = np.log(SCALE_MAX / SCALE_MIN) / (NUM_SCALE_LEVELS - 1)
    guess = np.log(np.clip(s, 1e-3, 1e4).astype(np.float64)) - np.log(SCALE_MIN)
    guess = np.clip(np.rint(guess / step), 0, NUM_SCALE_LEVELS - 1).astype(np.int64)
    # With _MIDS_EXT[l] < s <= _MIDS_EXT[l + 1] <=> level l; the guess is off by at most one.
    guess += s > _MIDS_EXT[guess + 1]
    guess -= s <= _MIDS_EXT[guess]
    return guess


def _snap(xp, weight_logits, means, scales):
    """Grid values of the parameters; only exact IEEE operations, so numpy == jax bit for bit."""
    return (
        _snap_weights(xp, weight_logits),
        _mean_ints(xp, means) * np.float32(MEAN_STEP),
        xp.asarray(SCALE_GRID)[_scale_levels(xp, scales)],
    )


@jax.custom_vjp
def _snap_jax(weight_logits, means, scales):
    return _snap(jnp, weight_logits, means, scales)


def _snap_jax_fwd(weight_logits, means, scales):
    return _snap(jnp, weight_logits, means, scales), (weight_logits, scales)


def _snap_jax_bwd(res, g):
    # Straight-through: gradients as if weights = softmax(logits), means and scales unchanged
    # (scales below the grid only receive gradients that push them up, like lower_bound).
    logits, scales = res
    gw, gm, gs = g
    w = jax.nn.softmax(logits, axis=-1)
    g_logits = w * (gw - jnp.sum(gw * w, axis=-1, keepdims=True))
    gs = jnp.where((scales >= SCALE_MIN) | (gs < 0), gs, 0)
    return g_logits.astype(logits.dtype), gm, gs.astype(scales.dtype)


_snap_jax.defvjp(_snap_jax_fwd, _snap_jax_bwd)


def quantize_params(weight_logits, means, scales):
    """Snaps mixture parameters onto the coder's grids (numpy and jax give identical values).

    Args:
      weight_logits: ``[..., K]`` logits (K <= 16).
      means: ``[..., K]`` means.
      scales: ``[..., K]`` scales.

    Returns:
      ``(weights, means, scales)``, float32 ``[..., K]`` each, of the input's kind (jax arrays if
      any input is one, with straight-through gradients). ``weights`` are multiples of 1/256,
      each >= 1/256, summing to exactly 1; means are multiples of 1/64; scales are
      :data:`SCALE_GRID` values.
    """
    if any(isinstance(a, jax.Array) for a in (weight_logits, means, scales)):
        return _snap_jax(
            jnp.asarray(weight_logits, jnp.float32),
            jnp.asarray(means, jnp.float32),
            jnp.asarray(scales, jnp.float32),
        )
    return _snap(np, np.asarray(weight_logits), np.asarray(means), np.asarray(scales))


# ---------------------------------------------------------------------------------- coding


class _PhiTable:
    """Phi((i - (f + 32)/64) / s_g) for scale levels g <= gmax, fractions f < 64, |i| <= H_g + 1.

    Stored flat in float32; level g occupies 64 rows of ``2 H_g + 3`` entries from ``base[g]``.
    Beyond +-(5 s_g + 1) the entries are exactly 0 and 1, and ``H_g >= 64`` so that supports of
    typical width need no clipping (indices past a row's ends are clipped onto them).
    Extended (never rebuilt) when a larger scale level is needed.
    """

    def __init__(self):
        core = np.ceil(_TABLE_STDS * SCALE_GRID.astype(np.float64)).astype(np.int64) + 1
        self.core = core
        self.half = np.maximum(core, _TABLE_PAD)
        self.row = 2 * self.half + 3
        self.base = np.concatenate([[0], np.cumsum(MEAN_RES * self.row)[:-1]])
        self.gmax = -1
        self.flat = np.zeros(0, np.float32)

    def ensure(self, gmax: int) -> None:
        if gmax <= self.gmax:
            return
        from scipy.special import ndtr  # pylint: disable=g-import-not-at-top  # lazy: start-up

        parts = [self.flat]
        frac = (np.arange(MEAN_RES, dtype=np.float64)[:, None] + 32.0) / MEAN_RES
        for g in range(self.gmax + 1, gmax + 1):
            h, c = int(self.half[g]), int(self.core[g])
            vals = np.zeros((MEAN_RES, 2 * h + 3), np.float32)
            vals[:, h + 1 + c + 1 :] = 1.0
            i = np.arange(-c, c + 1, dtype=np.float64)[None, :]
            vals[:, h + 1 - c : h + 2 + c] = ndtr((i - frac) / float(SCALE_GRID[g]))
            parts.append(vals.reshape(-1))
        self.flat = np.concatenate(parts)
        self.gmax = gmax


@functools.lru_cache(maxsize=1)
def _phi_table() -> _PhiTable:
    return _PhiTable()


# ceil(SUPPORT_STDS * s_g): support radius per scale level, in integers (exact, no float rounding
# of the per-element support bounds).
_SUPPORT_RADIUS = np.ceil(SUPPORT_STDS * SCALE_GRID.astype(np.float64)).astype(np.int32)


class _Plan(supports.SupportPlan):
    """The supports of :mod:`jaxlic.entropy.supports` (radius ``ceil(4 s)``) and the addressing of
    the Phi table for the probability rows of the (permuted) elements.

    Attributes:
      q: ``[N, K]`` float32 integer weights (units of 1/256), ``qsum`` their ``[N, 1]`` sum.
      shift, upper, base: ``[N, K]`` int32 addressing of the Phi table per component.
    """

    def __init__(self, weights, means, scales):
        weights = np.asarray(weights, np.float32)
        if weights.ndim != 2 or np.shape(means) != weights.shape or np.shape(scales) != weights.shape:
            raise ValueError("weights, means and scales must all be [N, K]")
        q = np.maximum(np.rint(weights * np.float32(WEIGHT_RES)), 1)
        m_int = _mean_ints(np, np.asarray(means)).astype(np.int32)
        level = _scale_levels(np, np.asarray(scales)).astype(np.int32)
        super().__init__(q, m_int, _SUPPORT_RADIUS[level], mean_res=MEAN_RES, chunk_entries=_CHUNK_ENTRIES)

        table = _phi_table()
        if level.size:
            table.ensure(int(level.max()))
        o = self.order
        self.q = q[o]
        self.qsum = self.q.sum(axis=-1, keepdims=True, dtype=np.float64)
        level, m_int = level[o], m_int[o]
        half = table.half[level]
        # Entry i of a row sits at the bin edge mean + i - (f + 32)/64; the edge start - 1/2 + j is
        # entry start + j - floor(mean), i.e. row position shift + j, valid in [0, upper].
        self.shift = (self.start[:, None] - (m_int >> 6) + half + 1).astype(np.int32)
        self.upper = (2 * half + 2).astype(np.int32)
        self.base = (table.base[level] + (m_int & (MEAN_RES - 1)) * table.row[level]).astype(np.int32)

    def rows(self, lo: int, hi: int, width: int) -> np.ndarray:
        """``[hi - lo, width + 1]`` float32 probabilities (regular symbols, then escape), exact dyadic."""
        flat = _phi_table().flat
        n, k = hi - lo, self.q.shape[1]
        j = np.arange(width + 1, dtype=np.int32)
        acc = np.empty((n, width + 1), np.float32)
        tmp = np.empty((n, width + 1), np.float32)
        pos = np.empty((n, width + 1), np.int32)
        for c in range(k):
            shift, upper, base = self.shift[lo:hi, c], self.upper[lo:hi, c], self.base[lo:hi, c]
            np.add((shift + base)[:, None], j, out=pos)
            bad = np.flatnonzero((shift < 0) | (shift + width > upper))
            if bad.size:  # rows whose support leaves this component's row: clip onto 0 / 1
                pos[bad] = np.clip(shift[bad, None] + j, 0, upper[bad, None]) + base[bad, None]
            np.take(flat, pos, out=tmp)
            tmp *= self.q[lo:hi, c, None]
            if c == 0:
                acc, tmp = tmp, acc
            else:
                acc += tmp
        # Cumulative over the support (mixture CDF minus its value at the first edge) -> integer
        # CDF with the escape last: cdf[j] = rint(cum[j] (2^p - L)) + j, cdf[L] = 2^p. The mixture
        # CDF is non-decreasing, so no symbol gets a zero frequency (cf. tables.cumulative_to_quantized_cdf).
        acc -= acc[:, :1]
        acc *= (float((1 << PRECISION) - (width + 1)) / self.qsum[lo:hi]).astype(np.float32)
        np.rint(acc, out=acc)
        acc += j
        pmf = tmp
        np.subtract(acc[:, 1:], acc[:, :-1], out=pmf[:, :-1])
        np.subtract(np.float32(1 << PRECISION), acc[:, -1], out=pmf[:, -1])
        pmf *= np.float32(1.0 / (1 << PRECISION))
        return pmf


def encode_mixture(symbols: np.ndarray, weights: np.ndarray, means: np.ndarray, scales: np.ndarray) -> bytes:
    """Range-codes integer ``symbols`` under per-element Gaussian mixtures.

    Args:
      symbols: ``[N]`` integer values (the rounded latents themselves, not residuals).
      weights: ``[N, K]`` snapped weights (from :func:`quantize_params`; other values are snapped).
      means: ``[N, K]`` snapped means.
      scales: ``[N, K]`` snapped scales.

    Returns:
      Compressed bytes.
    """
    symbols = rangecoder._check_int32(symbols)
    return _Plan(weights, means, scales).encode(symbols)


def decode_mixture(data: bytes, weights: np.ndarray, means: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_mixture`.

    Args:
      data: compressed bytes.
      weights, means, scales: the same ``[N, K]`` parameters the encoder used.

    Returns:
      ``[N]`` int32 symbols.

    Raises:
      BitstreamError: if ``data`` is malformed.
    """
    return _Plan(weights, means, scales).decode(data)
