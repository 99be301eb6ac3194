"""The jaxlic bitstream container: one self-describing file per compressed image.

A ``.jlic`` file carries what a decoder needs to pick the right model (name and quality), the
image size, and the entropy-coded payload as a list of opaque byte sections (e.g. ``z`` and
``y`` strings). The container knows nothing about what the sections mean.

Layout (all integers unsigned LEB128 varints unless said otherwise)::

    magic      4 bytes  b"JLIC"
    version    1 byte   FORMAT_VERSION (2; version 1 streams are read too)
    total      4 bytes  big-endian u32: length of the whole stream, CRC included
    model      1 byte length (1..64) + printable ASCII
    quality    varint   (< 2**16)
    height     varint   (1..2**20)
    width      varint   (1..2**20)
    n_extra    varint   (<= 16), then per entry: 1 byte key length (1..32) + ASCII
                        identifier, zigzag varint value (signed 64-bit)
    n_sections varint   (<= 16), then per section: varint length + bytes
    crc32      4 bytes  big-endian zlib.crc32 of everything before it

``unpack`` checks magic, version, declared length and checksum first, then parses every field
with explicit bounds, so a truncated, corrupted or hostile stream raises
:class:`jaxlic.errors.BitstreamError` with a one-line message before anything sized by the
stream is allocated. Images larger than ``max_pixels`` are refused unless the caller raises it.

Version 2 has the same layout; a codec's version 2 stream holds in its extra fields ``weights`` (`WEIGHTS_KEY`: the
fingerprint of the decoder's parameters, `jaxlic.weights.fingerprint`) and ``symbols``
(`SYMBOLS_KEY`: CRC32 of the decoded latents), and may hold ``exact`` (`EXACT_KEY`: 1 when the
entropy parameters came from the exact integer path). Version 1 streams (float entropy path, no
symbol check) are still read.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

from jaxlic.errors import BitstreamError

MAGIC = b"JLIC"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
#: Version 2's extra fields: the decoder weights' fingerprint, the decoded latents' CRC32, and
#: the entropy path (1: exact).
WEIGHTS_KEY, SYMBOLS_KEY, EXACT_KEY = "weights", "symbols", "exact"

MAX_MODEL_NAME = 64
MAX_QUALITY = 2**16 - 1
MAX_DIM = 2**20
DEFAULT_MAX_PIXELS = 2**28
MAX_EXTRA = 16
MAX_EXTRA_KEY = 32
MAX_SECTIONS = 16
MAX_STREAM_BYTES = 2**32 - 1

_EXTRA_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_FIXED_PREFIX = len(MAGIC) + 1 + 4  # magic, version, total length
_CRC_BYTES = 4
_MIN_STREAM = _FIXED_PREFIX + _CRC_BYTES


@dataclasses.dataclass(frozen=True)
class Header:
    """What a decoder needs before touching the payload.

    Attributes:
        model: registry name of the model, e.g. ``"ckbd-full"`` (printable ASCII, <= 64 chars).
        quality: quality index of the model (0..65535).
        height: image height in pixels.
        width: image width in pixels.
        extra: small optional integer fields (identifier keys, signed 64-bit values), e.g. a
            latent padding or a flag; empty by default.
        version: the format version (`FORMAT_VERSION` when writing; 1 for old streams).
    """

    model: str
    quality: int
    height: int
    width: int
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def exact(self) -> bool:
        """Whether the entropy parameters came from the exact (integer) path."""
        return bool(self.extra.get(EXACT_KEY, 0))

    @property
    def has_symbol_check(self) -> bool:
        """Whether the stream carries the CRC32 of its decoded latents (version 2)."""
        return SYMBOLS_KEY in self.extra

    @property
    def pixels(self) -> int:
        """Number of pixels ``height * width``."""
        return self.height * self.width


# ----------------------------------------------------------------------------------------------
# varints


def _encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value) << 1) - 1


def _unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


class _Reader:
    """Bounds-checked cursor over the stream body; every read names the field it reads."""

    def __init__(self, data: bytes, start: int, end: int):
        self._data = data
        self.pos = start
        self.end = end

    def _need(self, n: int, field: str) -> None:
        if n > self.end - self.pos:
            raise BitstreamError(
                f"corrupted stream: {field} needs {n} bytes at offset {self.pos}, "
                f"only {self.end - self.pos} left"
            )

    def u8(self, field: str) -> int:
        self._need(1, field)
        value = self._data[self.pos]
        self.pos += 1
        return value

    def raw(self, n: int, field: str) -> bytes:
        self._need(n, field)
        value = bytes(self._data[self.pos : self.pos + n])
        self.pos += n
        return value

    def uvarint(self, field: str, max_value: int, max_bytes: int = 10) -> int:
        value = 0
        start = self.pos
        for i in range(max_bytes):
            byte = self.u8(field)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise BitstreamError(
                        f"corrupted stream: non-canonical varint for {field} at offset {start}"
                    )
                if value > max_value:
                    raise BitstreamError(f"corrupted stream: {field} = {value} exceeds the limit {max_value}")
                return value
        raise BitstreamError(f"corrupted stream: varint for {field} at offset {start} is too long")


# ----------------------------------------------------------------------------------------------
# validation shared by pack (ValueError: caller bug) and unpack (BitstreamError: bad stream)


def _check_header_fields(header: Header, fail) -> None:
    if not isinstance(header.model, str) or not header.model or len(header.model) > MAX_MODEL_NAME:
        fail(f"model name must be 1..{MAX_MODEL_NAME} characters, got {header.model!r}")
    if not _MODEL_RE.fullmatch(header.model):
        fail(f"model name must be printable ASCII without spaces, got {header.model!r}")
    for name, value, lo, hi in (
        ("quality", header.quality, 0, MAX_QUALITY),
        ("height", header.height, 1, MAX_DIM),
        ("width", header.width, 1, MAX_DIM),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            fail(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if header.version not in READ_VERSIONS:
        fail(f"format version must be one of {READ_VERSIONS}, got {header.version!r}")
    if len(header.extra) > MAX_EXTRA:
        fail(f"at most {MAX_EXTRA} extra fields allowed, got {len(header.extra)}")
    for key, value in header.extra.items():
        if not isinstance(key, str) or len(key) > MAX_EXTRA_KEY or not _EXTRA_KEY_RE.fullmatch(key):
            fail(f"extra key must be an identifier of <= {MAX_EXTRA_KEY} ASCII characters, got {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            fail(f"extra value for {key!r} must be a signed 64-bit integer, got {value!r}")


def _raise_value_error(message: str):
    raise ValueError(message)


def _raise_bitstream_error(message: str):
    raise BitstreamError(f"corrupted stream: {message}")


# ----------------------------------------------------------------------------------------------
# public API


def pack(header: Header, sections: list[bytes]) -> bytes:
    """Serialises a header and payload sections into one self-checking stream.

    Args:
        header: model name, quality and image size (see :class:`Header`).
        sections: up to 16 opaque byte strings (entropy-coded latents), kept in order.

    Returns:
        The complete container, ``b"JLIC"`` magic first and CRC32 last.

    Raises:
        ValueError: a header field or the section list is out of the format's bounds.
    """
    _check_header_fields(header, _raise_value_error)
    sections = list(sections)
    if len(sections) > MAX_SECTIONS:
        raise ValueError(f"at most {MAX_SECTIONS} sections allowed, got {len(sections)}")
    body = bytearray()
    name = header.model.encode("ascii")
    body += bytes([len(name)]) + name
    body += _encode_uvarint(header.quality)
    body += _encode_uvarint(header.height)
    body += _encode_uvarint(header.width)
    body += _encode_uvarint(len(header.extra))
    for key in sorted(header.extra):
        raw_key = key.encode("ascii")
        body += bytes([len(raw_key)]) + raw_key + _encode_uvarint(_zigzag(header.extra[key]))
    body += _encode_uvarint(len(sections))
    for section in sections:
        if not isinstance(section, (bytes, bytearray, memoryview)):
            raise ValueError(f"sections must be bytes, got {type(section).__name__}")
        body += _encode_uvarint(len(section)) + bytes(section)
    total = _FIXED_PREFIX + len(body) + _CRC_BYTES
    if total > MAX_STREAM_BYTES:
        raise ValueError(f"stream of {total} bytes exceeds the format limit of {MAX_STREAM_BYTES}")
    out = bytearray(MAGIC) + bytes([header.version]) + struct.pack(">I", total) + body
    out += struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, list[bytes]]:
    """Parses and verifies a stream produced by :func:`pack`.

    Args:
        data: the complete stream.
        max_pixels: refuse headers declaring more than this many pixels (default ``2**28``),
            so that a hostile or corrupted header cannot make the decoder allocate gigabytes.

    Returns:
        ``(header, sections)``.

    Raises:
        BitstreamError: wrong magic or version, truncated, trailing bytes, checksum mismatch,
            any field out of bounds, or an image larger than ``max_pixels``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if n < len(MAGIC) and MAGIC.startswith(data):
            raise BitstreamError(f"stream truncated: {n} bytes, too short for a jaxlic header")
        raise BitstreamError("not a jaxlic stream (bad magic, expected b'JLIC')")
    if n < len(MAGIC) + 1:
        raise BitstreamError(f"stream truncated: {n} bytes, too short for a jaxlic header")
    version = data[len(MAGIC)]
    if version not in READ_VERSIONS:
        raise BitstreamError(
            f"unsupported jaxlic format version {version} (this jaxlic reads versions "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    if n < _MIN_STREAM:
        raise BitstreamError(f"stream truncated: {n} bytes, too short for a jaxlic header")
    (total,) = struct.unpack(">I", data[len(MAGIC) + 1 : _FIXED_PREFIX])
    if total < _MIN_STREAM:
        raise BitstreamError(f"corrupted stream: declared length {total} is impossibly small")
    if n < total:
        raise BitstreamError(f"stream truncated: header declares {total} bytes, got {n}")
    if n > total:
        raise BitstreamError(f"corrupted stream: {n - total} trailing bytes after the declared {total}")
    (stored_crc,) = struct.unpack(">I", data[-_CRC_BYTES:])
    if zlib.crc32(data[:-_CRC_BYTES]) & 0xFFFFFFFF != stored_crc:
        raise BitstreamError("checksum mismatch: stream is corrupted")

    reader = _Reader(data, _FIXED_PREFIX, n - _CRC_BYTES)
    name_len = reader.u8("model name length")
    if not 1 <= name_len <= MAX_MODEL_NAME:
        _raise_bitstream_error(f"model name length {name_len} not in [1, {MAX_MODEL_NAME}]")
    raw_name = reader.raw(name_len, "model name")
    try:
        model = raw_name.decode("ascii")
    except UnicodeDecodeError:
        _raise_bitstream_error("model name is not ASCII")
    quality = reader.uvarint("quality", MAX_QUALITY, max_bytes=3)
    height = reader.uvarint("height", MAX_DIM, max_bytes=3)
    width = reader.uvarint("width", MAX_DIM, max_bytes=3)
    n_extra = reader.uvarint("number of extra fields", MAX_EXTRA, max_bytes=1)
    extra: dict[str, int] = {}
    for _ in range(n_extra):
        key_len = reader.u8("extra key length")
        if not 1 <= key_len <= MAX_EXTRA_KEY:
            _raise_bitstream_error(f"extra key length {key_len} not in [1, {MAX_EXTRA_KEY}]")
        try:
            key = reader.raw(key_len, "extra key").decode("ascii")
        except UnicodeDecodeError:
            _raise_bitstream_error("extra key is not ASCII")
        if key in extra:
            _raise_bitstream_error(f"duplicate extra key {key!r}")
        extra[key] = _unzigzag(reader.uvarint(f"extra value {key!r}", 2**64 - 1, max_bytes=10))
    header = Header(model=model, quality=quality, height=height, width=width, extra=extra, version=version)
    _check_header_fields(header, _raise_bitstream_error)
    if header.pixels > max_pixels:
        raise BitstreamError(
            f"image of {height}x{width} = {header.pixels} pixels exceeds the limit of {max_pixels} "
            "pixels (raise max_pixels to decode it)"
        )
    n_sections = reader.uvarint("number of sections", MAX_SECTIONS, max_bytes=1)
    sections = []
    for i in range(n_sections):
        length = reader.uvarint(f"length of section {i}", MAX_STREAM_BYTES, max_bytes=5)
        # raw() checks the declared length against the bytes left before slicing.
        sections.append(reader.raw(length, f"section {i}"))
    if reader.pos != reader.end:
        _raise_bitstream_error(f"{reader.end - reader.pos} unparsed bytes before the checksum")
    return header, sections


#: Header extra key holding a variable-rate stream's rate parameter (float32 bits as int32).
RATE_KEY = "rate"


def rate_to_extra(q: float) -> int:
    """The header value of rate parameter q: the bits of float32(q) as a signed 32-bit integer."""
    return struct.unpack("<i", struct.pack("<f", q))[0]


def rate_from_extra(value: int) -> float:
    """The float32 rate parameter stored as `value` by `rate_to_extra` (as a Python float).

    Raises:
      BitstreamError: the value is not a 32-bit pattern.
    """
    if not -(2**31) <= value < 2**31:
        raise BitstreamError(f"corrupted stream: rate field {value} is not a 32-bit value")
    return struct.unpack("<f", struct.pack("<i", value))[0]
