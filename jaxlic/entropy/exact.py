"""Exact integer entropy coding: CDFs that are integer functions of integer parameters.

A range-coded stream decodes only if the decoder rebuilds, bit for bit, every CDF the encoder
used. The float host coders (:mod:`jaxlic.entropy.gaussian`, :mod:`jaxlic.entropy.mixture`) derive
their tables with ``np.exp`` and ``scipy.special.ndtr``, whose last bits may differ between CPUs
and numpy builds (SIMD ``exp`` kernels, for instance). Ballé, Johnston & Minnen 2019 ("Integer
networks for data compression with latent-variable models") show that cross-platform decoding
needs the entropy model's parameters computed in integers; this module is the coder side of that:
given integer parameters, every CDF the range coder sees comes from integer arithmetic alone.

Design:

* **Constants** are computed once, with exact decimal arithmetic, by ``tools/make_exact_tables.py``
  and shipped as int64 arrays in ``exact_tables.npz`` (loaded lazily, once). No float operation
  decides any of them.
* **Parameters** are integers: a scale *level* ``g`` in ``[0, 256)`` names
  ``sigma_g = 0.11 (256 / 0.11)**(g / 255)``; means are integers in units of 1/64
  (:data:`MEAN_RES`); mixture weights are integers ``>= 1`` summing to :data:`WEIGHT_TOTAL` (256).
  :func:`levels_from_fixed` and :func:`weights_from_logits` map fixed-point network outputs onto
  them with integer operations that numpy and ``jax.numpy`` evaluate identically.
* **The Gaussian CDF** :func:`phi` is ``2**30 Phi(num / (64 sigma_g))`` for an integer ``num``: a
  fixed-point product with the reciprocal ``inv[g] ~ 2**40 / (64 sigma_g)``, then linear
  interpolation in ``PHI[i] = round(2**30 Phi(i / 4096))`` with floor shifts. It is non-decreasing
  in ``num`` by construction (positive factor, floor shifts, non-decreasing table).
* **Integer CDFs** (:func:`quantized_cdf`): ``cdf_j = floor(cum_j (2**16 - L) / total) + j``, so
  every symbol has frequency ``>= 1`` and the total is exactly ``2**16``.
* **Coding** goes through :mod:`jaxlic.coding.rangecoder` (``constriction``), which receives the
  integer CDFs as exact dyadic floats.

Bit widths and the overflow argument (all products are int64):

* ``PHI`` step ``2**-12`` (:data:`PHI_FRAC_BITS`): at the largest scale, ``sigma = 256``, one unit
  bin spans ``u = 1/256``, i.e. 16 table steps. A bin there holds about ``0.4 / 256`` of the mass
  (``1.7e6`` units of ``2**-30``); linear interpolation errs by at most
  ``h**2 / 8 * max|Phi''| = 2**-27 * 0.242 < 2**-29``, below one unit. With a ``2**-10`` step a bin
  would span only 4 steps and the error would be 16 times larger; 12 bits cost 65537 entries
  (about 120 kB compressed).
* ``phi``: ``num`` is clamped to ``|num| <= 2**24`` (no effect: ``|u| >= 8`` already saturates at
  ``|num| >= 8 * 64 * 256 = 2**17``); ``inv <= 2**40 / (64 * 0.11) < 2**37.2``, so
  ``|num * inv| < 2**61.2``. Shifting right by ``40 - 12 - 16 = 12`` gives ``u`` in units of
  ``2**-28``: 12 bits index the table (:data:`PHI_FRAC_BITS`), 16 interpolate
  (:data:`INTERP_BITS`). Table steps are ``<= 2**30 * 0.399 * 2**-12 < 2**17``, so the
  interpolation product is ``< 2**33``.
* Mixture CDFs: ``sum_k w_k phi <= 256 * 2**30 = 2**38``; times ``2**16`` in :func:`quantized_cdf`
  gives ``< 2**54``.
* ``weights_from_logits`` stays in int32: ``exp_table <= 2**20``, ``e * 256 <= 2**28``, the sum of
  at most 16 terms ``<= 2**24``.

Float32 scale values (:func:`sigma_values`) exist for rate *estimates* only; they never decide a
probability used in coding.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.coding.tables import IndexedTables
from jaxlic.entropy import supports

__all__ = [
    "NUM_LEVELS",
    "MEAN_RES",
    "WEIGHT_TOTAL",
    "PRECISION",
    "MAX_WIDTH",
    "phi",
    "quantized_cdf",
    "gaussian_tables",
    "encode_gaussian",
    "decode_gaussian",
    "encode_mixture",
    "decode_mixture",
    "mixture_cdf_rows",
    "weights_from_logits",
    "scale_thresholds",
    "levels_from_fixed",
    "sigma_values",
]

NUM_LEVELS = 256  # scale levels
MEAN_RES = 64  # means are integers in units of 1 / MEAN_RES
WEIGHT_TOTAL = 256  # mixture weights are integers summing to this
PRECISION = 16  # bits of every coded CDF's total
MAX_COMPONENTS = 16
MAX_MEAN = 2**23  # |mean| (units of 1/64), i.e. |mean| <= 2**17

PHI_BITS = 30  # phi() returns Phi in units of 2**-30
PHI_FRAC_BITS = 12  # the PHI table's step is 2**-12 in u
PHI_RANGE = 8  # the table spans |u| <= 8; beyond, phi saturates (PHI is 0 / 2**30 there anyway)
INV_BITS = 40  # inv[g] = round(2**40 / (64 sigma_g))
INTERP_BITS = 16  # fractional bits of u below the table step, for interpolation
NUM_LIMIT = 2**24  # |num| is clamped to this before the product with inv

EXP_BITS = 20  # exp_table[j] = max(1, round(2**20 exp(-j / 16)))
LOGIT_RES = 16  # logits are integers in units of 1/16
LOGIT_MAX_DIFF = 256  # logit differences are clamped to 256 / 16 = 16

SUPPORT_STDS = 4  # mixture support: floor(mean) -/+ ceil(4 sigma) over the components
MAX_WIDTH = supports.MAX_WIDTH  # widest mixture support; wider ones are centred on the weighted mean

TABLES_PATH = pathlib.Path(__file__).with_name("exact_tables.npz")

_ONE = 1 << PHI_BITS
_U_SHIFT = INV_BITS - PHI_FRAC_BITS - INTERP_BITS
_U_SAT = PHI_RANGE << (PHI_FRAC_BITS + INTERP_BITS)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_CHUNK_ENTRIES = 1 << 18  # rows * (width + 2) per chunk: bounds the working memory (a few MB per array)


def table_meta() -> list[int]:
    """The bit widths the shipped tables are made for (stored beside them, checked on load)."""
    return [
        NUM_LEVELS,
        PHI_BITS,
        PHI_FRAC_BITS,
        PHI_RANGE,
        INV_BITS,
        MEAN_RES,
        EXP_BITS,
        LOGIT_RES,
        LOGIT_MAX_DIFF,
    ]


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, np.ndarray]:
    """The shipped constants (read-only int64 arrays), loaded once."""
    with np.load(TABLES_PATH, allow_pickle=False) as f:
        tables = {k: np.asarray(f[k]) for k in f.files}
    for k, v in tables.items():
        if v.dtype != np.int64:
            raise ValueError(f"{TABLES_PATH}: {k} is {v.dtype}, not int64")
        v.setflags(write=False)
    if tables["meta"].tolist() != table_meta():
        raise ValueError(f"{TABLES_PATH} was made for other bit widths; run tools/make_exact_tables.py")
    return tables


def _as_int64(x, name: str) -> np.ndarray:
    """``x`` as an int64 array; refuses anything but integer (or empty) input."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu" and x.size:
        raise TypeError(f"{name} must be integers, got {x.dtype}")
    return x.astype(np.int64, copy=False)


def _check_levels(levels) -> np.ndarray:
    levels = _as_int64(levels, "levels")
    if levels.size and (levels.min() < 0 or levels.max() >= NUM_LEVELS):
        raise ValueError(f"scale levels must lie in [0, {NUM_LEVELS})")
    return levels


# ---------------------------------------------------------------------------------- Gaussian CDF


def _phi_scaled(num: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """:func:`phi` with the reciprocal ``inv[level]`` already looked up (broadcasting with ``num``)."""
    table = _tables()["phi"]
    u = np.clip(num, -NUM_LIMIT, NUM_LIMIT) * inv
    u >>= _U_SHIFT  # u = floor(num / (64 sigma) * 2**28), monotone in num
    np.clip(u, -_U_SAT, _U_SAT, out=u)
    u += _U_SAT  # now in [0, 2 * 8 * 2**28]
    idx = np.minimum(u >> INTERP_BITS, table.size - 2)
    u -= idx << INTERP_BITS  # interpolation weight in [0, 2**16] (2**16 only at the last entry)
    lo = table[idx]
    step = table[idx + 1]
    step -= lo
    step *= u
    step >>= INTERP_BITS
    step += lo
    return step


def phi(num, level) -> np.ndarray:
    """``2**30 * Phi(num / (64 sigma_level))`` in integer arithmetic.

    ``u = num / (64 sigma)`` is formed as ``(num * inv[level]) >> 12`` (units of ``2**-28``), then
    ``PHI`` is linearly interpolated with floor shifts. Saturates to exactly 0 and ``2**30`` for
    ``|u| >= 8``. Non-decreasing in ``num`` for a fixed level. Within ``2**-26`` of the true value:
    ``inv``'s rounding (relative ``<= 2**-27``, times ``max |u| Phi'(u) < 1/4``), the floor of ``u``
    (``2**-28``), the table's rounding and interpolation (``2**-31`` and ``< 2**-29``).

    Args:
      num: int array, a value in units of 1/64 (a bin edge minus the mean).
      level: int array of scale levels in ``[0, 256)``, broadcastable with ``num``.

    Returns:
      int64 array of the broadcast shape, in ``[0, 2**30]``.
    """
    num = _as_int64(num, "num")
    level = _check_levels(level)
    return _phi_scaled(num, _tables()["inv"][level])


# ------------------------------------------------------------------------------- integer CDFs


def _cumulative_to_cdf(cum: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``cdf_j = floor(cum_j (2**16 - L) / total) + j`` for ``cum`` ``[..., L+1]`` with ``cum_L == total``.

    A row with ``total == 0`` becomes uniform. ``cum`` must be non-decreasing and ``total < 2**47``.
    """
    num_symbols = cum.shape[-1] - 1
    j = np.arange(num_symbols + 1, dtype=np.int64)
    empty = total == 0
    if empty.any():
        cum = np.where(empty, j, cum)
        total = np.where(empty, num_symbols, total)
    cdf = cum * ((1 << PRECISION) - num_symbols)
    cdf //= total
    cdf += j
    return cdf.astype(np.int32)


def quantized_cdf(masses) -> np.ndarray:
    """Integer CDFs with no zero frequency from integer masses (integer arithmetic only).

    ``cdf_j = floor(cum_j (2**16 - L) / total) + j`` where ``cum`` is the running sum of the masses
    and ``total`` their sum: every frequency is at least one, the CDF starts at 0 and ends at
    exactly ``2**16``. A row of zero masses becomes uniform.

    Args:
      masses: ``[..., L]`` non-negative integers, ``1 <= L <= 2**16``, row sums below ``2**47``.

    Returns:
      ``[..., L+1]`` int32 CDFs.
    """
    masses = _as_int64(masses, "masses")
    num_symbols = masses.shape[-1] if masses.ndim else 0
    if not 1 <= num_symbols <= 1 << PRECISION:
        raise ValueError(f"need 1 to {1 << PRECISION} symbols, got {num_symbols}")
    if masses.size and masses.min() < 0:
        raise ValueError("masses must be non-negative")
    cum = np.concatenate([np.zeros(masses.shape[:-1] + (1,), np.int64), np.cumsum(masses, axis=-1)], axis=-1)
    total = cum[..., -1:]
    if total.size and total.max() >= 1 << (63 - PRECISION):
        raise ValueError("masses too large")
    return _cumulative_to_cdf(cum, total)


# --------------------------------------------------------------------------------- Gaussian


@functools.lru_cache(maxsize=1)
def gaussian_tables() -> IndexedTables:
    """Integer CDF tables of the zero-mean discretized Gaussian, one per scale level (cached).

    Table ``g`` codes the residuals ``r`` in ``[-c_g, c_g]``, ``c_g = table_radius[g] =
    ceil(sigma_g Phi^-1(1 - 1e-9 / 2))``, with masses ``phi(64 r + 32, g) - phi(64 r - 32, g)``;
    the mass of both tails goes to the escape symbol (the last one).

    Returns:
      :class:`~jaxlic.coding.tables.IndexedTables` with 256 tables, precision 16.
    """
    radius = _tables()["table_radius"]
    lengths = 2 * radius + 3
    cdfs = np.full((NUM_LEVELS, int(lengths.max())), 1 << PRECISION, np.int32)
    for g in range(NUM_LEVELS):
        c = int(radius[g])
        edges = phi(MEAN_RES * np.arange(-c, c + 2, dtype=np.int64) - MEAN_RES // 2, g)
        tail = edges[0] + (_ONE - edges[-1])
        cdfs[g, : lengths[g]] = quantized_cdf(np.append(np.diff(edges), tail))
    return IndexedTables(
        cdfs=cdfs,
        cdf_lengths=lengths.astype(np.int32),
        offsets=(-radius).astype(np.int32),
        precision=PRECISION,
    )


def encode_gaussian(symbols, levels) -> bytes:
    """:func:`jaxlic.entropy.gaussian.encode_gaussian` on the exact tables: integer scale levels
    (``[0, 256)``, shaped like ``symbols``) name the tables of :func:`gaussian_tables` in place of
    float scales. ``symbols`` are the integer residuals ``round(y - mean)``; values outside a
    table are escaped and coded losslessly. Returns the compressed bytes."""
    symbols, levels = np.asarray(symbols), np.asarray(levels)
    if symbols.shape != levels.shape:
        raise ValueError(f"symbols {symbols.shape} and levels {levels.shape} differ in shape")
    return rangecoder.encode_indexed(_as_int64(symbols, "symbols"), _check_levels(levels), gaussian_tables())


def decode_gaussian(data: bytes, levels) -> np.ndarray:
    """Inverse of :func:`encode_gaussian` (given the same levels): int32 residuals shaped like
    ``levels``; raises `BitstreamError` if ``data`` is malformed."""
    return rangecoder.decode_indexed(data, _check_levels(levels), gaussian_tables())


# ---------------------------------------------------------------------------------- mixture


def _check_mixture(weights, means, levels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, m, lv = _as_int64(weights, "weights"), _as_int64(means, "means"), _check_levels(levels)
    if w.ndim != 2 or m.shape != w.shape or lv.shape != w.shape:
        raise ValueError("weights, means and levels must all be [N, K]")
    if not 1 <= w.shape[1] <= MAX_COMPONENTS:
        raise ValueError(f"need 1 to {MAX_COMPONENTS} mixture components, got {w.shape[1]}")
    if w.size and (w.min() < 1 or (w.sum(axis=1) != WEIGHT_TOTAL).any()):
        raise ValueError(f"weights must be >= 1 and sum to {WEIGHT_TOTAL}")
    if m.size and np.abs(m).max() > MAX_MEAN:
        raise ValueError(f"means must lie in [-{MAX_MEAN}, {MAX_MEAN}] (units of 1/{MEAN_RES})")
    return w, m, lv


class _MixturePlan(supports.SupportPlan):
    """The supports of :mod:`jaxlic.entropy.supports` (radius ``support_radius[level]``, i.e.
    ``ceil(4 sigma)``) and the integer CDF rows of the (permuted) elements.

    Attributes:
      weights, means, inv: ``[N, K]`` int64 parameters of the permuted elements (``inv`` looked up).
    """

    cdf_precision = PRECISION

    def __init__(self, weights, means, levels):
        w, m, lv = _check_mixture(weights, means, levels)
        tables = _tables()
        super().__init__(w, m, tables["support_radius"][lv], mean_res=MEAN_RES, chunk_entries=_CHUNK_ENTRIES)
        o = self.order
        self.weights, self.means = w[o], m[o]
        self.inv = tables["inv"][lv[o]]

    def rows(self, lo: int, hi: int, width: int) -> np.ndarray:
        """``[hi - lo, width + 2]`` int32 CDFs: the ``width`` support values, then the escape.

        The bin of value ``v`` spans the edges ``v -/+ 1/2``; the mixture CDF at an edge ``e`` is
        ``sum_k w_k phi(64 e - m_k, level_k)``. The escape gets mass 0, hence frequency 1.
        """
        j = np.arange(width + 1, dtype=np.int64)
        edges = (self.start[lo:hi, None] + j) * MEAN_RES - MEAN_RES // 2
        cum = np.zeros((hi - lo, width + 2), np.int64)
        for k in range(self.weights.shape[1]):
            p = _phi_scaled(edges - self.means[lo:hi, k, None], self.inv[lo:hi, k, None])
            p *= self.weights[lo:hi, k, None]
            cum[:, :-1] += p
        cum[:, :-1] -= cum[:, :1].copy()
        cum[:, -1] = cum[:, -2]
        return _cumulative_to_cdf(cum, cum[:, -1:])


def encode_mixture(symbols, weights, means, levels) -> bytes:
    """Range-codes integer ``symbols`` under per-element Gaussian mixtures with integer parameters.

    ``P(v) = sum_k w_k / 256 [Phi((v + 1/2 - m_k / 64) / sigma_k) - Phi((v - 1/2 - m_k / 64) / sigma_k)]``
    (Cheng et al. 2020) in the integer form of :func:`phi`, over the support of
    :mod:`jaxlic.entropy.supports`. Values outside an element's support are coded as its escape
    symbol and, after all regular symbols, losslessly.

    Args:
      symbols: ``[N]`` integer values (the rounded latents themselves, not residuals).
      weights: ``[N, K]`` integer weights, each ``>= 1``, rows summing to 256 (``1 <= K <= 16``).
      means: ``[N, K]`` integer means in units of 1/64, ``|mean| <= 2**23``.
      levels: ``[N, K]`` scale levels in ``[0, 256)``.

    Returns:
      Compressed bytes (empty for ``N == 0``).
    """
    symbols = rangecoder._check_int32(_as_int64(symbols, "symbols"))
    return _MixturePlan(weights, means, levels).encode(symbols)


def decode_mixture(data: bytes, weights, means, levels) -> np.ndarray:
    """Inverse of :func:`encode_mixture`.

    Args:
      data: compressed bytes.
      weights, means, levels: the same ``[N, K]`` integer parameters the encoder used.

    Returns:
      ``[N]`` int32 symbols.

    Raises:
      BitstreamError: if ``data`` is malformed.
    """
    return _MixturePlan(weights, means, levels).decode(data)


def mixture_cdf_rows(weights, means, levels) -> tuple[np.ndarray, list[np.ndarray]]:
    """The coder's support and integer CDF of every element (for tests and inspection).

    Args:
      weights, means, levels: ``[N, K]`` integer parameters as for :func:`encode_mixture`.

    Returns:
      ``(start, rows)``: ``start`` ``[N]`` int64, the value of symbol 0 of each element; ``rows`` a
      list of ``N`` int32 CDFs, element ``i``'s of length ``width_i + 2`` (the last symbol is the
      escape).
    """
    plan = _MixturePlan(weights, means, levels)
    rows: list[np.ndarray] = [np.zeros(0, np.int32)] * plan.start.size
    for lo, hi, width in plan.chunks:
        cdfs = plan.rows(lo, hi, width)
        for i, row in zip(plan.order[lo:hi], cdfs):
            rows[i] = row
    start = np.empty(plan.start.size, np.int64)
    start[plan.order] = plan.start
    return start, rows


# ---------------------------------------------------------------- parameters from fixed point


def weights_from_logits(logit16, xp=np):
    """Integer mixture weights (each ``>= 1``, summing to 256) from integer logits, in int32.

    ``d = min(max_k logit - logit, 256)``, ``e = exp_table[d] ~ 2**20 exp(-d / 16)``,
    ``w = max(1, round(256 e / sum(e)))`` (half up, in integers), and the first largest weight takes
    ``256 - sum(w)``. Only integer operations, so numpy and ``jax.numpy`` give identical results.

    Args:
      logit16: ``[..., K]`` integer logits in units of 1/16 (``1 <= K <= 16``); values are clamped to
        ``+-2**29``.
      xp: the array module, ``numpy`` (default) or ``jax.numpy``.

    Returns:
      ``[..., K]`` int32 weights of ``xp``'s kind.
    """
    logit16 = xp.asarray(logit16)
    if xp is np:
        logit16 = _as_int64(logit16, "logit16")
    k = logit16.shape[-1]
    if not 1 <= k <= MAX_COMPONENTS:
        raise ValueError(f"need 1 to {MAX_COMPONENTS} mixture components, got {k}")
    lg = xp.clip(logit16, -(2**29), 2**29).astype(xp.int32)
    d = xp.minimum(xp.max(lg, axis=-1, keepdims=True) - lg, LOGIT_MAX_DIFF)
    e = xp.take(xp.asarray(_tables()["exp_table"].astype(np.int32)), d)
    total = xp.sum(e, axis=-1, keepdims=True, dtype=xp.int32)
    w = xp.maximum((e * WEIGHT_TOTAL + total // 2) // total, 1)
    first_max = xp.arange(k) == xp.argmax(w, axis=-1)[..., None]
    w = w + xp.where(first_max, WEIGHT_TOTAL - xp.sum(w, axis=-1, keepdims=True, dtype=xp.int32), 0)
    return w.astype(xp.int32)


def scale_thresholds(frac_bits) -> np.ndarray:
    """Integer scale thresholds ``floor(mid_i 2**frac_bits[c])`` (``mid`` the 255 geometric midpoints).

    A fixed-point scale ``v`` (``frac_bits`` fractional bits) has ``mid_i < v / 2**frac`` exactly
    when ``floor(mid_i 2**frac) < v``; the thresholds are ``mid_q32 >> (32 - frac)`` (exact, as
    ``mid_q32 = floor(mid 2**32)``).

    Args:
      frac_bits: ``[C]`` integers in ``[0, 30]``.

    Returns:
      ``[C, 255]`` int64, non-decreasing along the last axis.
    """
    frac = _as_int64(frac_bits, "frac_bits").reshape(-1)
    if frac.size and (frac.min() < 0 or frac.max() > 30):
        raise ValueError("frac_bits must lie in [0, 30]")
    return _tables()["mid_q32"][None, :] >> (32 - frac[:, None])


def levels_from_fixed(values, frac_bits, xp=np):
    """Scale levels of fixed-point scales: the number of midpoints strictly below ``value / 2**frac``.

    A branch-free binary search over the 256 levels (8 steps of ``take`` and ``where``) on int32
    thresholds (:func:`scale_thresholds`, clipped to the int32 range, which changes no comparison
    with an int32 value), so numpy and ``jax.numpy`` give identical levels. Non-positive values get
    level 0, values above the largest midpoint level 255.

    Args:
      values: ``[..., C]`` integer scales in fixed point (int32 range).
      frac_bits: ``[C]`` host integers in ``[0, 30]``, the fractional bits of each channel.
      xp: the array module, ``numpy`` (default) or ``jax.numpy``.

    Returns:
      ``[..., C]`` int32 levels in ``[0, 256)``, of ``xp``'s kind.
    """
    thresholds = np.clip(scale_thresholds(frac_bits), _INT32_MIN, _INT32_MAX).astype(np.int32)
    num_ch = thresholds.shape[0]
    values = xp.asarray(values)
    if values.ndim == 0 or values.shape[-1] != num_ch:
        raise ValueError(f"values {values.shape} do not end in the {num_ch} channels of frac_bits")
    if xp is np:
        values = _as_int64(values, "values")
        if values.size and (values.min() < _INT32_MIN or values.max() > _INT32_MAX):
            raise ValueError("values must lie in the int32 range")
    values = values.astype(xp.int32)
    flat = xp.asarray(thresholds.reshape(-1))
    row = xp.asarray(np.arange(num_ch, dtype=np.int32) * (NUM_LEVELS - 1))
    level = xp.zeros(values.shape, xp.int32)
    step = NUM_LEVELS // 2
    while step:
        candidate = level + step
        below = xp.take(flat, row + candidate - 1) < values
        level = xp.where(below, candidate, level)
        step //= 2
    return level


def sigma_values() -> np.ndarray:
    """``[256]`` float32 ``sigma_g`` (rounded from the stored Q32 integers), for rate estimates ONLY.

    Never used to decide a probability in coding: the coders use the integer tables.
    """
    return (_tables()["sigma_q32"] * (1.0 / (1 << 32))).astype(np.float32)
