"""Integer CDF tables shared by the entropy models and the range coder.

A range coder needs, for every symbol, an integer cumulative distribution whose total is
``2**precision`` and in which every symbol of the alphabet has a frequency of at least one
(otherwise that symbol could not be coded at all). The tables are *data derived from model
parameters*, built once on the host with numpy; they are never parameters themselves.

Conventions (as in TFC's ``entropy_encode_index``, Ballé et al. 2018, "Variational image
compression with a scale hyperprior"):

* a table ``t`` covers the regular values ``offsets[t] + [0, R_t)`` with ``R_t = cdf_lengths[t] - 2``,
* symbol index ``R_t`` (the last one) is the *escape* symbol: values outside the table are coded as
  escape, followed by their value coded losslessly in the same stream (see
  :mod:`jaxlic.coding.rangecoder`); nothing is ever clipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "IndexedTables",
    "pmf_to_quantized_cdf",
    "cumulative_to_quantized_cdf",
    "tables_to_dict",
    "tables_from_dict",
]


def cumulative_to_quantized_cdf(cum: np.ndarray, precision: int = 16) -> np.ndarray:
    """Quantizes cumulative probabilities to an integer CDF with no zero frequency.

    ``cdf[..., k] = rint(cum[..., k] * (2**p - L)) + k`` where ``L`` is the alphabet size. Since
    ``cum`` is non-decreasing, every frequency ``cdf[k+1] - cdf[k]`` is at least one, the CDF
    starts at ``0`` and ends exactly at ``2**p``, and each frequency is within one unit of its
    ideal value (no "deficit" has to be redistributed).

    Args:
      cum: ``[..., L+1]`` float cumulative probabilities, ``cum[..., 0] == 0`` and
        ``cum[..., L] == 1`` (both are forced), non-decreasing in between (enforced with a running
        maximum if it is not).
      precision: number of bits of the total, ``2**precision >= L``.

    Returns:
      ``[..., L+1]`` int32 CDF.
    """
    cum = np.asarray(cum, dtype=np.float64)
    num_symbols = cum.shape[-1] - 1
    total = 1 << precision
    if num_symbols < 1:
        raise ValueError("need at least one symbol")
    if num_symbols > total:
        raise ValueError(f"{num_symbols} symbols do not fit in {precision} bits")
    cum = np.clip(np.nan_to_num(cum, nan=0.0), 0.0, 1.0)
    cum = np.maximum.accumulate(cum, axis=-1)
    cum[..., 0] = 0.0
    cum[..., -1] = 1.0
    cdf = np.rint(cum * float(total - num_symbols)).astype(np.int64)
    cdf += np.arange(num_symbols + 1, dtype=np.int64)
    return cdf.astype(np.int32)


def pmf_to_quantized_cdf(pmf: np.ndarray, precision: int = 16) -> np.ndarray:
    """Converts probability mass functions to integer CDFs with no zero-frequency symbol.

    Rows are normalised first (a row that sums to zero, or contains only non-finite values,
    becomes uniform); negative and NaN entries count as zero.

    Args:
      pmf: ``[..., L]`` non-negative probabilities (need not sum to one).
      precision: number of bits of the CDF total.

    Returns:
      ``[..., L+1]`` int32 CDF, ``cdf[..., 0] == 0``, ``cdf[..., L] == 2**precision``, strictly
      increasing.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    pmf = np.where(np.isfinite(pmf) & (pmf > 0), pmf, 0.0)
    total = pmf.sum(axis=-1, keepdims=True)
    bad = ~(np.isfinite(total) & (total > 0))
    pmf = np.where(bad, 1.0, pmf)
    total = np.where(bad, pmf.shape[-1], total)
    cum = np.concatenate([np.zeros_like(total), np.cumsum(pmf, axis=-1)], axis=-1) / total
    return cumulative_to_quantized_cdf(cum, precision)


@dataclasses.dataclass(frozen=True)
class IndexedTables:
    """A set of integer CDF tables indexed by a per-element table index.

    Attributes:
      cdfs: ``[T, Lmax+1]`` int32 CDFs; row ``t`` is valid up to ``cdf_lengths[t]`` entries and
        padded with ``2**precision`` afterwards. The last valid symbol of each row is the escape.
      cdf_lengths: ``[T]`` int32, number of valid CDF entries (= regular symbols + escape + 1).
      offsets: ``[T]`` int32, value coded by symbol index 0 of each table.
      precision: bits of the CDF total.
    """

    cdfs: np.ndarray
    cdf_lengths: np.ndarray
    offsets: np.ndarray
    precision: int = 16

    @property
    def num_tables(self) -> int:
        return int(self.cdfs.shape[0])

    @property
    def num_regular(self) -> np.ndarray:
        """``[T]`` number of regular (non-escape) symbols per table."""
        return self.cdf_lengths - 2

    def pmf(self, t: int) -> np.ndarray:
        """Float64 probabilities of table ``t`` (regular symbols then escape), summing to one."""
        n = int(self.cdf_lengths[t])
        return np.diff(self.cdfs[t, :n].astype(np.int64)).astype(np.float64) / float(1 << self.precision)

    def log2_prob(self, values: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        """Log2-probability the tables give to in-range ``values`` (escapes: the escape symbol only).

        Args:
          values: int array, any shape.
          indexes: int array of the same shape, table per element.

        Returns:
          float64 array of that shape.
        """
        values = np.asarray(values, np.int64)
        indexes = np.asarray(indexes, np.int64)
        rel = values - self.offsets[indexes]
        nreg = self.num_regular[indexes]
        rel = np.where((rel < 0) | (rel >= nreg), nreg, rel)
        cdfs = self.cdfs.astype(np.int64)
        freq = cdfs[indexes, rel + 1] - cdfs[indexes, rel]
        return np.log2(freq) - self.precision

    @classmethod
    def from_pmfs(
        cls, pmfs: list[np.ndarray], tails: np.ndarray, offsets: np.ndarray, precision: int = 16
    ) -> IndexedTables:
        """Builds padded tables from ragged pmfs.

        Args:
          pmfs: ``T`` float arrays of regular-symbol probabilities (lengths may differ).
          tails: ``[T]`` probability mass outside each table (given to the escape symbol).
          offsets: ``[T]`` value of symbol index 0.
          precision: bits of the CDF total.
        """
        lengths = np.array([len(p) + 2 for p in pmfs], dtype=np.int32)
        lmax = int(lengths.max()) if len(pmfs) else 2
        cdfs = np.full((len(pmfs), lmax), 1 << precision, dtype=np.int32)
        for t, p in enumerate(pmfs):
            full = np.concatenate([np.asarray(p, np.float64), [float(tails[t])]])
            cdfs[t, : lengths[t]] = pmf_to_quantized_cdf(full, precision)
        return cls(cdfs=cdfs, cdf_lengths=lengths, offsets=np.asarray(offsets, np.int32), precision=precision)


def tables_to_dict(tables: IndexedTables) -> dict:
    """JSON-able form of integer tables (lists of ints), e.g. to ship them with a weights file."""
    return {
        "cdfs": np.asarray(tables.cdfs).tolist(),
        "cdf_lengths": np.asarray(tables.cdf_lengths).tolist(),
        "offsets": np.asarray(tables.offsets).tolist(),
        "precision": int(tables.precision),
    }


def tables_from_dict(d: dict) -> IndexedTables:
    """Inverse of `tables_to_dict`."""
    return IndexedTables(
        cdfs=np.asarray(d["cdfs"], np.int32),
        cdf_lengths=np.asarray(d["cdf_lengths"], np.int32),
        offsets=np.asarray(d["offsets"], np.int32),
        precision=int(d["precision"]),
    )
