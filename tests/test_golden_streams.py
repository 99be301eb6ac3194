"""Committed streams decode here to the symbols and the image they were written with.

tests/fixtures/streams/ holds exact streams of the shipped models, written by
tools/make_golden_streams.py on more than one machine (AVX2 and AVX-512 CPUs) and recorded in
GOLDEN.json. Decoded on this one with the weights each names (`jaxlic.zoo.for_stream`, as the
CLI), each must pass its symbol check, give the recorded symbol digest
(`eval.portability.symbol_digest`: z's symbols and ``round(y_hat * 64)``) and an image within
0.05 dB of the recorded PSNR: the synthesis (g_s, post-processing) is float, so a pixel may move
by one across machines; the symbols may not.

The format 1 float stream of the first release has no symbol check: it decodes with the archived
float weights (`jaxlic/pretrained/archive/LEGACY.json`) to its image, or fails with an error where
this machine's float entropy path differs from the writer's; never to another image.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from eval.portability import captured_symbols, symbol_digest
from jaxlic import zoo
from jaxlic.coding import container
from jaxlic.errors import BitstreamError, ModelError
from jaxlic.metrics import psnr

# One xdist worker decodes them all: each shipped model loads (and compiles) once.
pytestmark = pytest.mark.xdist_group("golden_streams")

STREAMS = pathlib.Path(__file__).parent / "fixtures" / "streams"
GOLDEN = json.loads((STREAMS / "GOLDEN.json").read_text())


def _picture(expr: str):
    """The image of a record's ``skimage.data.NAME()``."""
    from skimage import data

    name = expr.removeprefix("skimage.data.").removesuffix("()")
    return getattr(data, name)()


@pytest.fixture(scope="module")
def decoder():
    """``decoder(header)``: the codec the CLI decodes a stream with (one per weights)."""
    codecs = {}

    def get(header):
        key = (header.model, header.quality, header.extra.get(container.WEIGHTS_KEY))
        if key not in codecs:
            codecs[key] = zoo.for_stream(header, zoo.load(header.model, header.quality))
        return codecs[key]

    return get


def test_golden_record_lists_every_stream():
    files = {s["file"] for s in GOLDEN["streams"]} | {GOLDEN["legacy"]["file"]}
    assert files == {p.name for p in STREAMS.glob("*.jlic")}
    assert {(s["model"], s["rate"]) for s in GOLDEN["streams"]} == {
        ("ckbd-full-vr", 1.0),
        ("ckbd-full-vr", 5.0),
        ("ckbd-full-vr", 3.0),
        ("ckbd-full", None),
        ("ckbd-full-vr", 4.0),
    }


@pytest.mark.parametrize("entry", GOLDEN["streams"], ids=lambda s: s["file"])
def test_golden_stream_decodes_to_its_symbols(entry, decoder):
    data = (STREAMS / entry["file"]).read_bytes()
    assert len(data) == entry["bytes"]
    header, _ = container.unpack(data)
    assert header.version == 2 and header.exact and header.has_symbol_check
    assert header.extra[container.SYMBOLS_KEY] == entry["symbols_crc"]
    codec = decoder(header)
    assert codec.exact and f"{codec.weights_id:016x}" == entry["weights"]
    with captured_symbols() as seen:
        img = codec.decompress(data)  # raises BitstreamError if the symbol check fails
    assert codec.last_rate == entry["rate"]
    assert symbol_digest(seen[-1]) == entry["symbol_digest"], "decoded symbols differ from the writer's"
    quality = psnr(_picture(entry["image"]), img)
    assert abs(quality - entry["psnr"]) < 0.05, (quality, entry["psnr"])


def test_float_stream_of_the_first_release_decodes_to_its_image_or_fails(decoder):
    legacy = GOLDEN["legacy"]
    data = (STREAMS / legacy["file"]).read_bytes()
    assert len(data) == legacy["bytes"]
    header, _ = container.unpack(data)
    assert header.version == 1 and not header.has_symbol_check
    try:
        codec = decoder(header)
        assert not codec.exact  # the archived float weights
        img = codec.decompress(data)
    except (BitstreamError, ModelError):
        return  # this machine's float path differs from the writer's: an error, not an image
    quality = psnr(_picture(legacy["image"]), img)
    assert abs(quality - legacy["psnr"]) < 0.02, f"decoded to another image: {quality:.4f} dB"
