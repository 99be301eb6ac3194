"""Range coding bridge over ``constriction`` (host numpy only, never inside ``jit``).

Two ways to give the coder its distributions:

* **indexed tables** (TFC's ``entropy_encode_index`` semantics, Ballé et al. 2018, "Variational
  image compression with a scale hyperprior"): each element names one of a few shared integer
  CDF tables. For speed the elements are grouped by table index (a stable order both sides can
  reproduce from the indexes alone) and every group is coded with ONE fixed ``Categorical``
  model, which ``constriction`` codes at tens of millions of symbols per second.
* **per-symbol CDF rows** (used by the Gaussian mixture of Cheng et al. 2020): a ``[N, L+1]``
  integer CDF per element, handed to ``constriction``'s batched ``Categorical`` family.

Values a table cannot represent are coded as the table's *escape* symbol and, after all the
regular symbols, their value is appended to the same stream with an Elias-gamma-style code (a
categorical bit length followed by uniform 16-bit chunks). The compressed words are uint32,
serialised little-endian.

Probabilities are passed to ``constriction`` as ``diff(cdf) / 2**precision`` in float64. These
floats are exact, so ``constriction``'s own (deterministic, ``perfect=False``) quantisation
sees bit-identical inputs on the encoder and the decoder.
"""

from __future__ import annotations

import constriction
import numpy as np

from jaxlic.coding.tables import IndexedTables
from jaxlic.errors import BitstreamError

__all__ = [
    "StreamEncoder",
    "StreamDecoder",
    "encode_indexed",
    "decode_indexed",
    "encode_cdf_rows",
    "decode_cdf_rows",
]

_model = constriction.stream.model
_queue = constriction.stream.queue

# Elias-gamma length alphabet: bit lengths 1.._MAX_BITS of (u + 1), u < 2**_MAX_BITS.
_MAX_BITS = 40
_LENGTH_MODEL_PMF = np.full(_MAX_BITS, 1.0 / _MAX_BITS)
_CHUNK_BITS = 16
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _cdf_to_pmf(cdf: np.ndarray, precision: int) -> np.ndarray:
    return np.diff(cdf.astype(np.int64), axis=-1).astype(np.float64) * (1.0 / (1 << precision))


def _as_float(pmfs: np.ndarray) -> np.ndarray:
    pmfs = np.asarray(pmfs)
    return np.ascontiguousarray(
        pmfs, dtype=pmfs.dtype if pmfs.dtype in (np.float32, np.float64) else np.float64
    )


def _stable_group_order(indexes: np.ndarray, num_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable permutation that groups elements by table index, and the group sizes."""
    # Small integer keys let numpy use radix sort for kind="stable".
    key = indexes.astype(np.uint8 if num_tables <= 256 else np.uint16 if num_tables <= 65536 else np.int64)
    order = np.argsort(key, kind="stable")
    counts = np.bincount(indexes, minlength=num_tables)
    return order, counts


def _check_int32(symbols) -> np.ndarray:
    """Flat int64 copy of integer-valued ``symbols``; values must fit in int32 (what decoders return)."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size and (symbols.min() < _INT32_MIN or symbols.max() > _INT32_MAX):
        raise ValueError("symbols must lie in the int32 range")
    return symbols.astype(np.int64)


def _check_indexes(indexes: np.ndarray, tables: IndexedTables) -> np.ndarray:
    indexes = np.asarray(indexes).reshape(-1)
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.num_tables):
        raise ValueError(f"table indexes must lie in [0, {tables.num_tables})")
    return indexes.astype(np.int64)


class StreamEncoder:
    """Appends several coded sections to ONE range-coded stream; see :class:`StreamDecoder`."""

    def __init__(self):
        self._enc = _queue.RangeEncoder()

    def encode_indexed(self, symbols: np.ndarray, indexes: np.ndarray, tables: IndexedTables) -> None:
        """Codes ``symbols`` with the tables named by ``indexes`` (escapes appended at the end).

        Args:
          symbols: int array (any shape) of values.
          indexes: int array of the same size, table index per element.
          tables: the :class:`IndexedTables`.
        """
        symbols = _check_int32(symbols)
        indexes = _check_indexes(indexes, tables)
        if symbols.size != indexes.size:
            raise ValueError(f"{symbols.size} symbols but {indexes.size} indexes")
        if symbols.size == 0:
            return
        nreg = tables.num_regular.astype(np.int64)[indexes]
        rel = symbols - tables.offsets.astype(np.int64)[indexes]
        escaped = (rel < 0) | (rel >= nreg)
        coded = np.where(escaped, nreg, rel).astype(np.int32)
        order, counts = _stable_group_order(indexes, tables.num_tables)
        coded = coded[order]
        start = 0
        for t, n in enumerate(counts):
            if n:
                self._enc.encode(coded[start : start + n], self._table_model(tables, t))
                start += n
        self.encode_escapes(rel[escaped], nreg[escaped])

    def encode_cdf_rows(self, symbols: np.ndarray, cdfs: np.ndarray, precision: int) -> None:
        """Codes ``symbols[i]`` (in ``[0, L)``) with the integer CDF ``cdfs[i]`` (``[N, L+1]``)."""
        symbols = np.asarray(symbols, np.int32).reshape(-1)
        if symbols.size == 0:
            return
        if symbols.min() < 0 or symbols.max() >= cdfs.shape[-1] - 1:
            raise ValueError("symbol outside its CDF row")
        self.encode_pmf_rows(symbols, _cdf_to_pmf(cdfs, precision))

    def encode_pmf_rows(self, symbols: np.ndarray, pmfs: np.ndarray) -> None:
        """Codes ``symbols[i]`` with the probabilities ``pmfs[i]`` (``[N, L]`` float32/64, exact dyadic values)."""
        if len(symbols):
            self._enc.encode(
                np.asarray(symbols, np.int32), _model.Categorical(perfect=False), _as_float(pmfs)
            )

    def encode_escapes(self, rel: np.ndarray, num_regular: np.ndarray) -> None:
        """Losslessly codes escaped values ``rel`` (``< 0`` or ``>= num_regular``, elementwise).

        The value is folded to ``u >= 0`` (``rel < 0 -> -2 rel - 1`` (odd), else
        ``2 (rel - num_regular)`` (even)) and ``u + 1`` is Elias-gamma coded: its bit length with a
        categorical model, then the bits below the leading one in uniform 16-bit chunks.
        """
        rel = np.asarray(rel, np.int64).reshape(-1)
        if rel.size == 0:
            return
        u = np.where(rel < 0, -2 * rel - 1, 2 * (rel - np.asarray(num_regular, np.int64).reshape(-1)))
        m = u + 1
        nbits = np.frexp(m.astype(np.float64))[1].astype(np.int64)  # bit length, exact below 2**53
        if nbits.max() > _MAX_BITS:
            raise ValueError("escaped value too large")
        self._enc.encode((nbits - 1).astype(np.int32), _model.Categorical(_LENGTH_MODEL_PMF, perfect=False))
        payload = m - (np.int64(1) << (nbits - 1))
        for j in range(0, _MAX_BITS, _CHUNK_BITS):
            bits = np.clip(nbits - 1 - j, 0, _CHUNK_BITS)
            sel = bits > 0
            if not sel.any():
                break
            chunk = (payload[sel] >> j) & ((np.int64(1) << bits[sel]) - 1)
            self._enc.encode(
                chunk.astype(np.int32), _model.Uniform(), (np.int64(1) << bits[sel]).astype(np.int32)
            )

    def to_bytes(self) -> bytes:
        """The compressed stream (uint32 words, little-endian)."""
        return np.asarray(self._enc.get_compressed(), dtype="<u4").tobytes()

    @staticmethod
    def _table_model(tables: IndexedTables, t: int):
        # Models are cached on the (immutable) tables: callers such as serial context coding
        # code a few symbols per call many times over.
        cache = tables.__dict__.get("_constriction_models")
        if cache is None:
            cache = {}
            object.__setattr__(tables, "_constriction_models", cache)
        model = cache.get(t)
        if model is None:
            n = int(tables.cdf_lengths[t])
            model = _model.Categorical(_cdf_to_pmf(tables.cdfs[t, :n], tables.precision), perfect=False)
            cache[t] = model
        return model


class StreamDecoder:
    """Reads back the sections written by :class:`StreamEncoder`, in the same order.

    Every failure of ``constriction`` and every implausible decoded value raises
    :class:`jaxlic.errors.BitstreamError`; the amount of work is bounded by the (known) number of
    symbols, so corrupted data can never make decoding hang.
    """

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise BitstreamError("range-coded section length is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._dec = _queue.RangeDecoder(words)
        except Exception as e:  # noqa: BLE001 - constriction raises various types
            raise BitstreamError(f"cannot start range decoder: {e}") from None

    def _decode(self, *args) -> np.ndarray:
        try:
            return np.asarray(self._dec.decode(*args), dtype=np.int64)
        except Exception as e:  # noqa: BLE001
            raise BitstreamError(f"corrupted range-coded data: {e}") from None

    def decode_indexed(self, indexes: np.ndarray, tables: IndexedTables) -> np.ndarray:
        """Inverse of :meth:`StreamEncoder.encode_indexed`; returns int32 values, flat."""
        indexes = _check_indexes(indexes, tables)
        if indexes.size == 0:
            return np.zeros((0,), np.int32)
        order, counts = _stable_group_order(indexes, tables.num_tables)
        grouped = np.empty(indexes.size, np.int64)
        start = 0
        for t, n in enumerate(counts):
            if n:
                grouped[start : start + n] = self._decode(StreamEncoder._table_model(tables, t), int(n))
                start += n
        rel = np.empty(indexes.size, np.int64)
        rel[order] = grouped
        nreg = tables.num_regular.astype(np.int64)[indexes]
        escaped = rel == nreg
        if escaped.any():
            rel[escaped] = self.decode_escapes(nreg[escaped])
        values = rel + tables.offsets.astype(np.int64)[indexes]
        return self._to_int32(values)

    def decode_cdf_rows(self, cdfs: np.ndarray, precision: int) -> np.ndarray:
        """Inverse of :meth:`StreamEncoder.encode_cdf_rows`; returns int64 symbols ``[N]``."""
        return self.decode_pmf_rows(_cdf_to_pmf(cdfs, precision))

    def decode_pmf_rows(self, pmfs: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`StreamEncoder.encode_pmf_rows`; returns int64 symbols ``[N]``."""
        if pmfs.shape[0] == 0:
            return np.zeros((0,), np.int64)
        return self._decode(_model.Categorical(perfect=False), _as_float(pmfs))

    def decode_escapes(self, num_regular: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`StreamEncoder.encode_escapes`; ``num_regular`` has one entry per escape."""
        num_regular = np.asarray(num_regular, np.int64).reshape(-1)
        if num_regular.size == 0:
            return np.zeros((0,), np.int64)
        nbits = self._decode(_model.Categorical(_LENGTH_MODEL_PMF, perfect=False), num_regular.size) + 1
        if nbits.min() < 1 or nbits.max() > _MAX_BITS:
            raise BitstreamError("corrupted escape length")
        payload = np.zeros(num_regular.size, np.int64)
        for j in range(0, _MAX_BITS, _CHUNK_BITS):
            bits = np.clip(nbits - 1 - j, 0, _CHUNK_BITS)
            sel = bits > 0
            if not sel.any():
                break
            chunk = self._decode(_model.Uniform(), (np.int64(1) << bits[sel]).astype(np.int32))
            if chunk.min() < 0 or (chunk >> bits[sel]).any():
                raise BitstreamError("corrupted escape payload")
            payload[sel] |= chunk << j
        u = payload + (np.int64(1) << (nbits - 1)) - 1
        return np.where(u & 1, -((u + 1) >> 1), (u >> 1) + num_regular)

    @staticmethod
    def _to_int32(values: np.ndarray) -> np.ndarray:
        if values.size and (values.min() < _INT32_MIN or values.max() > _INT32_MAX):
            raise BitstreamError("decoded value out of int32 range")
        return values.astype(np.int32)


def encode_indexed(symbols: np.ndarray, indexes: np.ndarray, tables: IndexedTables) -> bytes:
    """Range-codes integer ``symbols`` with per-element tables (TFC ``entropy_encode_index``).

    Value ``s`` of an element with table ``t`` is coded as symbol ``s - offsets[t]``; values outside
    ``[offsets[t], offsets[t] + R_t)`` are coded as the escape symbol and then losslessly.

    Args:
      symbols: int array, any shape (flattened in C order).
      indexes: int array with as many elements, the table index of each element.
      tables: :class:`~jaxlic.coding.tables.IndexedTables`.

    Returns:
      The compressed bytes (empty for empty input).
    """
    enc = StreamEncoder()
    enc.encode_indexed(symbols, indexes, tables)
    return enc.to_bytes()


def decode_indexed(data: bytes, indexes: np.ndarray, tables: IndexedTables) -> np.ndarray:
    """Inverse of :func:`encode_indexed`.

    Args:
      data: bytes from :func:`encode_indexed`.
      indexes: the same table indexes the encoder used (any shape).
      tables: the same tables.

    Returns:
      int32 array shaped like ``indexes``.

    Raises:
      BitstreamError: if ``data`` is malformed.
    """
    indexes = np.asarray(indexes)
    return StreamDecoder(data).decode_indexed(indexes, tables).reshape(indexes.shape)


def encode_cdf_rows(symbols: np.ndarray, cdfs: np.ndarray, precision: int = 16) -> bytes:
    """Range-codes ``symbols[i]`` in ``[0, L)`` with its own integer CDF ``cdfs[i]`` (``[N, L+1]``)."""
    enc = StreamEncoder()
    enc.encode_cdf_rows(symbols, cdfs, precision)
    return enc.to_bytes()


def decode_cdf_rows(data: bytes, cdfs: np.ndarray, precision: int = 16) -> np.ndarray:
    """Inverse of :func:`encode_cdf_rows`; returns int32 symbols ``[N]``."""
    return StreamDecoder(data).decode_cdf_rows(np.asarray(cdfs), precision).astype(np.int32)
