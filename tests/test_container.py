"""Tests for the .jlic bitstream container: round trip and robustness against bad streams."""

import struct
import zlib

import numpy as np
import pytest

from jaxlic.coding import container
from jaxlic.coding.container import Header, pack, unpack
from jaxlic.errors import BitstreamError


def _valid_stream() -> bytes:
    header = Header("ckbd-full", 3, 512, 768, extra={"pad": 2, "neg": -7})
    return pack(header, [b"z" * 37, b"", bytes(range(256)) * 3])


def _reseal(body_without_crc: bytes) -> bytes:
    """Fixes the declared length and CRC so that only the field under test is wrong."""
    body = bytearray(body_without_crc)
    body[5:9] = struct.pack(">I", len(body) + 4)
    return bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)


def test_round_trip_preserves_header_and_sections():
    header = Header("ckbd-full", 3, 512, 768, extra={"pad": 2, "neg": -7, "big": 2**62})
    sections = [b"abc", b"", bytes(range(256)) * 40]
    got_header, got_sections = unpack(pack(header, sections))
    assert got_header == header
    assert got_sections == sections


def test_round_trip_with_no_sections_and_no_extra():
    header = Header("m", 0, 1, 1)
    assert unpack(pack(header, [])) == (header, [])


def test_every_truncation_raises_bitstream_error():
    data = _valid_stream()
    for length in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:length])


def test_trailing_bytes_are_refused():
    with pytest.raises(BitstreamError, match="trailing"):
        unpack(_valid_stream() + b"\x00")


def test_random_single_byte_corruptions_raise_bitstream_error():
    data = _valid_stream()
    rng = np.random.default_rng(1234)
    positions = rng.integers(0, len(data), size=3000)
    deltas = rng.integers(1, 256, size=3000)
    for pos, delta in zip(positions, deltas):
        corrupted = bytearray(data)
        corrupted[pos] = (corrupted[pos] + delta) % 256
        with pytest.raises(BitstreamError):
            unpack(bytes(corrupted))


def test_corrupted_fields_with_valid_checksum_raise_bitstream_error():
    """Byte-level fuzz of the body with the length and CRC refreshed, so the parser itself is hit."""
    data = _valid_stream()
    rng = np.random.default_rng(99)
    for _ in range(2000):
        body = bytearray(data[:-4])
        pos = int(rng.integers(9, min(len(body), 60)))
        body[pos] = int(rng.integers(0, 256))
        stream = _reseal(bytes(body))
        try:
            unpack(stream)
        except BitstreamError:
            pass


def test_absurd_size_is_refused_unless_limit_raised():
    data = pack(Header("ckbd-full", 1, 100_000, 100_000), [b"x"])
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        unpack(data)
    header, sections = unpack(data, max_pixels=10**10)
    assert (header.height, header.width) == (100_000, 100_000)
    assert sections == [b"x"]


def test_wrong_magic_says_not_a_jaxlic_stream():
    with pytest.raises(BitstreamError, match="not a jaxlic stream"):
        unpack(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)


def test_unknown_version_is_named_in_message():
    data = bytearray(_valid_stream())
    data[4] = 3
    with pytest.raises(BitstreamError, match="unsupported jaxlic format version 3"):
        unpack(bytes(data))


def test_checksum_mismatch_is_reported():
    data = bytearray(_valid_stream())
    data[-10] ^= 0xFF
    with pytest.raises(BitstreamError, match="checksum"):
        unpack(bytes(data))


def test_too_many_sections_declared_is_refused():
    body = bytearray(pack(Header("m", 0, 2, 2), [])[:-4])
    body[-1] = 200  # number of sections: one byte varint > MAX_SECTIONS
    with pytest.raises(BitstreamError, match="number of sections"):
        unpack(_reseal(bytes(body)))


def test_huge_section_length_is_refused_before_allocation():
    body = bytearray(pack(Header("m", 0, 2, 2), [])[:-4])
    body[-1] = 1
    body += bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])  # section length 2**32 - 1
    with pytest.raises(BitstreamError, match="section 0"):
        unpack(_reseal(bytes(body)))


def test_non_bytes_input_is_refused():
    with pytest.raises(BitstreamError):
        unpack("JLIC")


@pytest.mark.parametrize(
    "header",
    [
        Header("", 0, 1, 1),
        Header("x" * 65, 0, 1, 1),
        Header("has space", 0, 1, 1),
        Header("m", -1, 1, 1),
        Header("m", 0, 0, 1),
        Header("m", 0, 1, container.MAX_DIM + 1),
        Header("m", 0, 1, 1, extra={"bad key": 1}),
    ],
)
def test_pack_rejects_out_of_bounds_headers(header):
    with pytest.raises(ValueError):
        pack(header, [])


def test_pack_rejects_too_many_sections():
    with pytest.raises(ValueError):
        pack(Header("m", 0, 1, 1), [b""] * (container.MAX_SECTIONS + 1))
