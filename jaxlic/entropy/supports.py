"""Per-element supports grouped by width, and the range-coding loops over them (with escapes).

Both mixture coders (the float one, :mod:`jaxlic.entropy.mixture`, and the integer one,
:mod:`jaxlic.entropy.exact`) give every element its own distribution over an integer support and
differ only in how they compute the probabilities of a support. What they share is written here:

* **The support** of an element with integer weights ``w_k``, means ``m_k`` (in units of
  ``1 / mean_res``) and radii ``r_k``: ``[lo, hi]`` with ``lo = min_k(floor(m_k) - r_k)`` and
  ``hi = max_k(floor(m_k) + r_k) + 1``, integer arithmetic only. It is widened (centred) to the
  next of a few bucket widths (:data:`WIDTHS`), so that the elements of a bucket share one
  ``[n, width + 1]`` probability array; a support wider than :data:`MAX_WIDTH` is centred on the
  weighted mean ``floor(sum_k w_k m_k / (sum_k w_k mean_res))`` instead.
* **The order**: elements are grouped by bucket (a stable permutation both sides derive from the
  parameters alone) and processed in chunks of bounded size, never as a dense ``[N, 1024]`` table.
* **The coding**: an element's value ``v`` is coded as symbol ``v - start`` of its support; a value
  outside it as the escape symbol (the last one, ``width``), and after all regular symbols its
  offset is appended losslessly (:meth:`~jaxlic.coding.rangecoder.StreamEncoder.encode_escapes`).

A coder subclasses :class:`SupportPlan` and supplies :meth:`SupportPlan.rows` (float probabilities
or, with :attr:`SupportPlan.cdf_precision` set, integer CDFs).
"""

from __future__ import annotations

import numpy as np

from jaxlic.coding import rangecoder

__all__ = ["WIDTHS", "MAX_WIDTH", "SupportPlan"]

#: Support widths of the buckets: 2 to 6, then four steps per octave up to :data:`MAX_WIDTH`.
WIDTHS: np.ndarray = np.array(
    [2, 3, 4, 5, 6] + [p * q // 4 for p in (8, 16, 32, 64, 128, 256, 512) for q in (4, 5, 6, 7)] + [1024],
    np.int64,
)
WIDTHS.setflags(write=False)
MAX_WIDTH = int(WIDTHS[-1])  # widest support; wider ones are centred on the weighted mean


class SupportPlan:
    """What both coder sides derive from the parameters: the supports, the order and the chunks.

    Args:
      weights: ``[N, K]`` positive integer weights (any integer dtype).
      means: ``[N, K]`` integer means in units of ``1 / mean_res``.
      radius: ``[N, K]`` integer support radius of each component.
      mean_res: the means' resolution.
      chunk_entries: at most this many ``rows * (width + 2)`` per chunk (bounds the working memory).

    Attributes:
      order: ``[N]`` stable permutation grouping the elements by bucket.
      chunks: list of ``(lo, hi, width)`` slices of the permuted elements.
      start: ``[N]`` int64 first value of each (permuted) element's support.
    """

    #: What :meth:`rows` gives: ``None``, float probabilities; an integer ``p``, integer CDFs of
    #: total ``2**p`` (coded as `jaxlic.coding.rangecoder` codes integer CDFs).
    cdf_precision: int | None = None

    def __init__(self, weights, means, radius, *, mean_res: int, chunk_entries: int):
        floor_mean = means // mean_res
        lo = np.min(floor_mean - radius, axis=-1, initial=2**30).astype(np.int64)
        hi = np.max(floor_mean + radius, axis=-1, initial=-(2**30)).astype(np.int64) + 1
        need = hi - lo + 1
        bucket = np.minimum(np.searchsorted(WIDTHS, need), len(WIDTHS) - 1).astype(np.uint8)
        start = lo - (WIDTHS[bucket] - need) // 2
        wide = need > MAX_WIDTH
        if wide.any():
            w = weights[wide].astype(np.int64)
            center = (w * means[wide]).sum(axis=-1) // (w.sum(axis=-1) * mean_res)
            start[wide] = center - MAX_WIDTH // 2

        self.order = np.argsort(bucket, kind="stable")
        self.chunks: list[tuple[int, int, int]] = []
        pos = 0
        for b, count in enumerate(np.bincount(bucket, minlength=len(WIDTHS)).tolist()):
            width = int(WIDTHS[b])
            step = max(1, chunk_entries // (width + 2))
            for c0 in range(0, count, step):
                self.chunks.append((pos + c0, pos + min(count, c0 + step), width))
            pos += count
        self.start = start[self.order]

    def rows(self, lo: int, hi: int, width: int) -> np.ndarray:
        """The distributions of the permuted elements ``lo:hi`` over the ``width`` support values, then
        the escape: ``[hi - lo, width + 1]`` exact dyadic float probabilities, every one > 0, or, with
        :attr:`cdf_precision` set, ``[hi - lo, width + 2]`` integer CDFs with no zero frequency."""
        raise NotImplementedError

    def encode(self, symbols: np.ndarray) -> bytes:
        """Range-codes ``symbols`` (``[N]`` int64 values, in element order, not permuted)."""
        if symbols.size != self.start.size:
            raise ValueError(f"{symbols.size} symbols but {self.start.size} parameter rows")
        rel = symbols[self.order] - self.start
        enc = rangecoder.StreamEncoder()
        esc_rel, esc_width = [], []
        for lo, hi, width in self.chunks:
            r = rel[lo:hi]
            escaped = (r < 0) | (r >= width)
            if escaped.any():
                esc_rel.append(r[escaped])
                esc_width.append(np.full(int(escaped.sum()), width, np.int64))
                r = np.where(escaped, width, r)
            if self.cdf_precision is None:
                enc.encode_pmf_rows(r.astype(np.int32), self.rows(lo, hi, width))
            else:
                enc.encode_cdf_rows(r, self.rows(lo, hi, width), self.cdf_precision)
        if esc_rel:
            enc.encode_escapes(np.concatenate(esc_rel), np.concatenate(esc_width))
        return enc.to_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        """Inverse of :meth:`encode`: ``[N]`` int32 values in element order.

        Raises:
          BitstreamError: if ``data`` is malformed.
        """
        dec = rangecoder.StreamDecoder(data)
        rel = np.empty(self.start.size, np.int64)
        width_of = np.empty(self.start.size, np.int64)
        for lo, hi, width in self.chunks:
            if self.cdf_precision is None:
                rel[lo:hi] = dec.decode_pmf_rows(self.rows(lo, hi, width))
            else:
                rel[lo:hi] = dec.decode_cdf_rows(self.rows(lo, hi, width), self.cdf_precision)
            width_of[lo:hi] = width
        escaped = rel == width_of
        if escaped.any():
            rel[escaped] = dec.decode_escapes(width_of[escaped])  # appended in (permuted) element order
        out = np.empty(self.start.size, np.int64)
        out[self.order] = rel + self.start
        return rangecoder.StreamDecoder._to_int32(out)
