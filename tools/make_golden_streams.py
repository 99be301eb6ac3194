"""Writes the golden streams of tests/fixtures/streams/ and their record GOLDEN.json.

    python tools/make_golden_streams.py            # writes the streams GOLDEN.json lacks
    python tools/make_golden_streams.py --force    # rewrites them all

Golden streams are exact streams (format 2, `jaxlic.latent.exact`) of the shipped models, of
images that scikit-image bundles (`STREAMS`). tests/test_golden_streams.py decodes them on every
machine that runs the tests, with the weights they name (`jaxlic.zoo.for_stream`, as the CLI),
and checks that they give the symbols recorded here (`eval.portability.symbol_digest`: z's
symbols and ``round(y_hat * 64)``) and the image at the recorded PSNR (within 0.05 dB: the
synthesis is float, so a pixel may differ by one across machines; the symbols may not).

GOLDEN.json records per stream: the file, the model, its weights file's quality, the rate
parameter, the image, the bytes, the weights fingerprint, the symbol CRC of the header, the
symbol digest, the PSNR at writing, and where and when it was written (`provenance`).

A golden stream is written once, on the machine of the session that adds it (GOLDEN.json names it,
with its vector extension since the fifth stream), so the set grows across machines. When the
shipped weights change, the old streams stay (they decode with the archived weights they name)
and new ones are added under other names. So ``--force`` is for a stream whose definition
changed, not for a new release.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "streams"

#: file -> (model, weights quality, rate parameter or None, scikit-image picture).
STREAMS = {
    "ckbd-full-vr-q1-astronaut.jlic": ("ckbd-full-vr", 0, 1.0, "astronaut"),
    "ckbd-full-vr-q5-astronaut.jlic": ("ckbd-full-vr", 0, 5.0, "astronaut"),
    "ckbd-full-vr-q3-chelsea.jlic": ("ckbd-full-vr", 0, 3.0, "chelsea"),
    "ckbd-full-q2-astronaut-exact.jlic": ("ckbd-full", 2, None, "astronaut"),
    # Written on another machine than the four above (an AVX-512 one; they came from AVX2): each
    # machine that runs the tests decodes streams of both.
    "ckbd-full-vr-q4-coffee.jlic": ("ckbd-full-vr", 0, 4.0, "coffee"),
}


def picture(name: str):
    """A scikit-image picture as uint8 [H, W, 3]."""
    from skimage import data

    return getattr(data, name)()


def write(out: pathlib.Path, force: bool = False) -> dict:
    """Writes the streams GOLDEN.json lacks (all with `force`); returns the record."""
    sys.path.insert(0, str(ROOT))
    from eval.portability import captured_symbols, symbol_digest
    from jaxlic import zoo
    from jaxlic.coding import container
    from jaxlic.evaluation.rd import provenance
    from jaxlic.metrics import psnr

    index = out / "GOLDEN.json"
    record = json.loads(index.read_text()) if index.is_file() else {}
    streams = {} if force else {s["file"]: s for s in record.get("streams", [])}
    where = provenance("python tools/make_golden_streams.py" + (" --force" if force else ""))
    codecs = {}
    for file, (model, quality, rate, image) in STREAMS.items():
        if file in streams:
            continue
        if (model, quality) not in codecs:
            codecs[model, quality] = zoo.load(model, quality)
        codec = codecs[model, quality]
        if not codec.exact:
            raise SystemExit(f"the shipped {model} q{quality} is not exact: golden streams are exact")
        img = picture(image)
        with captured_symbols() as seen:
            data = codec.compress(img, **({} if rate is None else {"quality": rate}))
            written = symbol_digest(seen[-1])
            decoded = codec.decompress(data)
            assert symbol_digest(seen[-1]) == written, file
        header, _ = container.unpack(data)
        (out / file).write_bytes(data)
        streams[file] = {
            "file": file,
            "model": model,
            "quality": quality,
            "rate": rate,
            "image": f"skimage.data.{image}()",
            "bytes": len(data),
            "weights": f"{codec.weights_id:016x}",
            "symbols_crc": header.extra[container.SYMBOLS_KEY],
            "symbol_digest": written,
            "psnr": round(float(psnr(img, decoded)), 4),
            "machine": where["machine"],
            "date": where["date"],
            "provenance": where,
        }
        print(f"{file}: {len(data)} bytes, {streams[file]['psnr']:.4f} dB, symbols {written}")
    record = {
        "about": "exact golden streams of the shipped models (tools/make_golden_streams.py)",
        "streams": [streams[f] for f in STREAMS if f in streams],
        "legacy": record.get("legacy", LEGACY),
    }
    index.write_text(json.dumps(record, indent=1) + "\n")
    return record


#: The float stream of the first release (format 1, no symbol check), kept to check that it
#: decodes to its image or fails, never to another image (tests/test_golden_streams.py).
LEGACY = {
    "file": "ckbd-full-q2-astronaut.jlic",
    "model": "ckbd-full",
    "quality": 2,
    "image": "skimage.data.astronaut()",
    "format": 1,
    "bytes": 7783,
    "psnr": 28.4024,
    "machine": "an AVX2 x86-64 machine",
    "date": "2026-12-03",
    "note": "float entropy path: decodes with the archived float weights (LEGACY.json)",
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=pathlib.Path, default=OUT)
    p.add_argument("--force", action="store_true", help="rewrite every stream")
    args = p.parse_args(argv)
    write(args.out, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
