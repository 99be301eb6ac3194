"""Tests for the `jaxlic` command line and image I/O, with a fake lossless model zoo.

The fake codec stores the image with zlib inside a real container, so these tests pin down the
CLI's behaviour (files, errors, exit codes, atomic outputs) without the learned models.
"""

import json
import os
import sys
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxlic import cli
from jaxlic.coding.container import DEFAULT_MAX_PIXELS, Header, pack, unpack
from jaxlic.errors import JaxlicError, ModelError
from jaxlic.image_io import read_image, sample_image, write_bytes_atomic
from jaxlic.models import registry


class FakeCodec:
    """Lossless stand-in for a learned codec: zlib-compressed pixels in a container.

    A fixed-rate `jaxlic.rdcodec.RDCodec`: it takes no rate or target and cannot refine.
    """

    rate_range = default_rate = last_rate = last_rate_search = last_refine = None
    max_pixels = DEFAULT_MAX_PIXELS

    def __init__(self, name, quality):
        self.name, self.quality, self.last_timings = name, quality, {}

    def check(
        self, *, rate=None, target_bpp=None, target_bytes=None, refine_steps=0, refine_method="sga", size=None
    ):
        if rate is not None or target_bpp is not None or target_bytes is not None:
            raise ModelError(f"{self.name} is a fixed-rate model: it takes no rate parameter or target size")
        if refine_steps:
            raise ModelError(f"{self.name} cannot refine its latents")

    def compress(self, img, *, rate=None, target_bpp=None, target_bytes=None, refine_steps=0, **_):
        self.check(rate=rate, target_bpp=target_bpp, target_bytes=target_bytes, refine_steps=refine_steps)
        if self.name == "explode":
            raise JaxlicError("the model failed halfway")
        if self.name == "buggy":
            raise ZeroDivisionError("division by zero")
        h, w = img.shape[:2]
        return pack(Header(self.name, self.quality, h, w), [zlib.compress(img.tobytes(), 1)])

    def decompress(self, data):
        header, sections = unpack(data)
        return np.frombuffer(zlib.decompress(sections[0]), np.uint8).reshape(header.height, header.width, 3)

    def estimate_bpp(self, img, *, rate=None):
        self.check(rate=rate)
        return 8.0 * len(zlib.compress(img.tobytes(), 1)) / (img.shape[0] * img.shape[1])


def test_the_fake_and_the_real_codec_implement_the_protocol(vr_codec):
    from jaxlic.rdcodec import RateView, RDCodec, RefinedCodec

    vr = vr_codec()
    for c in (FakeCodec("ckbd", 3), vr, RateView(vr, 1.5), RefinedCodec(vr, 2)):
        assert isinstance(c, RDCodec), c
    assert not isinstance(object(), RDCodec)
    assert vr.rate_range == (0.0, 7.0) and RateView(vr, 1.5).rate_range == (1.5, 1.5)


def _fake_load(name="ckbd-full", quality=None, weights=None):
    if name not in ("ckbd-full", "ckbd", "explode", "buggy"):
        raise ModelError(f"unknown model {name!r}")
    if weights is not None and not os.path.exists(weights):
        raise ModelError(f"no such weights file: {weights}")
    return FakeCodec(name, 3 if quality is None else quality)


@pytest.fixture(autouse=True)
def fake_zoo(monkeypatch):
    zoo = types.ModuleType("jaxlic.zoo")
    zoo.load = _fake_load
    zoo.for_stream = lambda header, codec=None: codec
    zoo.available = lambda: {"ckbd-full": [1, 3], "ckbd": [3]}
    monkeypatch.setitem(sys.modules, "jaxlic.zoo", zoo)
    import jaxlic

    monkeypatch.setattr(jaxlic, "zoo", zoo, raising=False)
    monkeypatch.setattr(cli, "DEFAULT_MODEL", "ckbd-full")  # the fake zoo's fixed-rate default
    return zoo


IMG = sample_image("chelsea")[:40, :56]


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(IMG).save(path)
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _assert_one_line_error(err, *words):
    assert err.startswith("jaxlic: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err


# ------------------------------------------------------------------------------------ round trip


def test_compress_decompress_round_trip(tmp_path, png, capsys):
    code, out, _ = run(capsys, "compress", png, tmp_path / "a.jlic", "--quality", "5")
    assert code == 0 and "bpp" in out and "bytes" in out and "encode" in out
    code, out, _ = run(capsys, "decompress", tmp_path / "a.jlic", tmp_path / "b.png")
    assert code == 0 and "decode" in out
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0], IMG)
    code, out, _ = run(capsys, "info", tmp_path / "a.jlic")
    assert code == 0 and "ckbd-full" in out and "quality:  5" in out and "56x40" in out


def test_demo_prints_rate_and_quality(capsys):
    code, out, _ = run(capsys, "demo", "--sample", "chelsea")
    assert code == 0
    for word in ("bpp", "PSNR", "MS-SSIM", "encode", "decode", "bytes"):
        assert word in out
    assert "inf dB" in out  # the fake codec is lossless


# ------------------------------------------------------------------------------------ bad inputs


def test_missing_input(tmp_path, capsys):
    code, _, err = run(capsys, "compress", tmp_path / "nope.png", tmp_path / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "no such file")


def test_directory_and_non_image_inputs(tmp_path, capsys):
    code, _, err = run(capsys, "compress", tmp_path, tmp_path / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "directory")
    text = tmp_path / "fake.png"
    text.write_text("hello, not a picture")
    code, _, err = run(capsys, "compress", text, tmp_path / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "not an image")


def test_truncated_image_is_unreadable(tmp_path, png, capsys):
    data = png.read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "compress", broken, tmp_path / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "broken.png")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read anything")
def test_unreadable_input(tmp_path, png, capsys):
    os.chmod(png, 0)
    code, _, err = run(capsys, "compress", png, tmp_path / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "permission")


def test_truncated_and_corrupted_streams(tmp_path, png, capsys):
    assert run(capsys, "compress", png, tmp_path / "a.jlic")[0] == 0
    data = (tmp_path / "a.jlic").read_bytes()
    (tmp_path / "t.jlic").write_bytes(data[:-7])
    code, _, err = run(capsys, "decompress", tmp_path / "t.jlic", tmp_path / "t.png")
    assert code == 1
    _assert_one_line_error(err, "truncated")
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0x40
    (tmp_path / "c.jlic").write_bytes(bytes(corrupted))
    code, _, err = run(capsys, "decompress", tmp_path / "c.jlic", tmp_path / "c.png")
    assert code == 1
    _assert_one_line_error(err, "corrupted")
    code, _, err = run(capsys, "info", png)
    assert code == 1
    _assert_one_line_error(err, "not a jaxlic stream")
    assert not (tmp_path / "t.png").exists() and not (tmp_path / "c.png").exists()


def test_unknown_model_is_a_model_error(tmp_path, png, capsys):
    code, _, err = run(capsys, "compress", png, tmp_path / "o.jlic", "--model", "nonesuch")
    assert code == 1
    _assert_one_line_error(err, "unknown model 'nonesuch'")
    assert not (tmp_path / "o.jlic").exists()


def test_stream_of_unknown_model_fails_on_decompress(tmp_path, capsys):
    (tmp_path / "x.jlic").write_bytes(pack(Header("mystery", 1, 2, 2), [b""]))
    code, _, err = run(capsys, "decompress", tmp_path / "x.jlic", tmp_path / "x.png")
    assert code == 1
    _assert_one_line_error(err, "mystery")


def test_existing_output_needs_force(tmp_path, png, capsys):
    out = tmp_path / "a.jlic"
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "compress", png, out)
    assert code == 1
    _assert_one_line_error(err, "exists", "--force")
    assert out.read_bytes() == b"precious"
    assert run(capsys, "compress", png, out, "--force")[0] == 0
    assert out.read_bytes().startswith(b"JLIC")


def test_failed_compression_leaves_no_file(tmp_path, png, capsys):
    before = set(os.listdir(tmp_path))
    code, _, err = run(capsys, "compress", png, tmp_path / "o.jlic", "--model", "explode")
    assert code == 1
    _assert_one_line_error(err, "halfway")
    assert set(os.listdir(tmp_path)) == before


def test_failed_write_leaves_no_partial_or_temporary_file(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "o.jlic", b"x" * 1000)
    assert os.listdir(tmp_path) == []


def test_missing_output_directory(tmp_path, png, capsys):
    code, _, err = run(capsys, "compress", png, tmp_path / "no" / "o.jlic")
    assert code == 1
    _assert_one_line_error(err, "directory does not exist")


def test_internal_errors_are_one_line_too(tmp_path, png, capsys):
    code, _, err = run(capsys, "compress", png, tmp_path / "o.jlic", "--model", "buggy")
    assert code == 1 and err.count("\n") == 1 and "internal error: ZeroDivisionError" in err


def test_usage_errors_exit_2(capsys):
    assert run(capsys)[0] == 2
    assert run(capsys, "compress")[0] == 2
    assert run(capsys, "compress", "a", "b", "--quality", "high")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "compress" in out


def test_convert_stub_reports_missing_module_or_delegates(capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("jaxlic.convert")
    fake.main_convert = lambda args: calls.append(args.argv) or 0
    monkeypatch.setitem(sys.modules, "jaxlic.convert", fake)
    import jaxlic

    monkeypatch.setattr(jaxlic, "convert", fake, raising=False)
    assert run(capsys, "convert-compressai", "--arch", "x", "in.pth")[0] == 0
    assert calls == [["--arch", "x", "in.pth"]]


# ------------------------------------------------------------------------------------ conversions


def _save(path, array, mode=None, **kw):
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def test_rgba_is_composited_on_white(tmp_path, capsys):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    img, notes = read_image(_save(tmp_path / "a.png", rgba))
    assert img[0, 0].tolist() == [200, 0, 0] and img[7, 0].tolist() == [255, 255, 255]
    assert any("white" in n for n in notes)
    code, out, _ = run(capsys, "compress", tmp_path / "a.png", tmp_path / "a.jlic")
    assert code == 0 and "note: alpha channel composited on a white background" in out


def test_opaque_alpha_is_dropped(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    _, notes = read_image(_save(tmp_path / "a.png", rgba))
    assert notes == ["fully opaque alpha channel dropped"]


def test_grayscale_palette_and_16bit(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    img, notes = read_image(_save(tmp_path / "g.png", gray))
    assert img.shape == (8, 8, 3) and (img[..., 1] == gray).all() and "grayscale" in notes[0]

    pal = Image.fromarray(IMG).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    img, notes = read_image(tmp_path / "p.png")
    assert img.shape == IMG.shape and any("palette" in n for n in notes)

    g16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(g16).save(tmp_path / "g16.png")
    img, notes = read_image(tmp_path / "g16.png")
    assert img[0, 1, 0] == round(1000 / 257) and any("16-bit" in n for n in notes)


def test_plain_rgb_has_no_notes(png):
    img, notes = read_image(png)
    assert notes == [] and img.dtype == np.uint8 and img.shape == IMG.shape


# ------------------------------------------------------------------------------------ eval, bdrate


def test_eval_writes_curves_csv_plots(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        Image.fromarray(sample_image("chelsea")[i * 30 : i * 30 + 48, :64]).save(images / f"k{i}.png")
    out = tmp_path / "res"
    code, stdout, _ = run(
        capsys,
        "eval",
        images,
        "--models",
        "ckbd-full",
        "--qualities",
        "1,3",
        "--codecs",
        "jpeg,bpg",
        "--codec-qualities",
        "30,80",
        "--out",
        out,
    )
    assert code == 0, stdout
    assert {
        "ckbd-full.json",
        "jpeg.json",
        "per_image_ckbd-full.csv",
        "per_image_codecs.csv",
        "summary.json",
        "rd_psnr.png",
        "rd_ms-ssim.png",
    } <= set(os.listdir(out))
    model = json.loads((out / "ckbd-full.json").read_text())
    assert model["name"] == "ckbd-full" and model["results"]["quality"] == sorted(model["results"]["quality"])
    assert len(model["results"]["bpp"]) == 2 and model["results"]["bpp_real_over_estimated"][0] > 1.0
    jpeg = json.loads((out / "jpeg.json").read_text())
    assert jpeg["results"]["bpp"] == sorted(jpeg["results"]["bpp"])
    assert {"psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} <= set(jpeg["results"])
    assert len((out / "per_image_ckbd-full.csv").read_text().strip().splitlines()) == 1 + 2 * 2
    assert len((out / "per_image_codecs.csv").read_text().strip().splitlines()) == 1 + 2 * 2
    assert "jpeg" in stdout and "ckbd-full" in stdout
    # The fake model is lossless (inf dB): its matched-rate rows are there, the rates lie
    # outside JPEG's two settings and are counted, not extrapolated.
    summary = json.loads((out / "summary.json").read_text())
    cell = summary["matched_rate"]["ckbd-full q1"]["jpeg"]
    assert cell["n"] + cell["outside"] + cell["not_finite"] == 2 and "command" in summary["provenance"]
    assert "matched rate" in stdout
    if "bpg" not in __import__("jaxlic.evaluation.codecs").evaluation.codecs.available_codecs():
        assert "skipping bpg" in stdout
    # A second run into the same folder needs --force.
    code, _, err = run(capsys, "eval", images, "--codecs", "jpeg", "--out", out)
    assert code == 1
    _assert_one_line_error(err, "not empty")


def test_eval_reuses_earlier_codec_results(tmp_path, capsys, monkeypatch):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        Image.fromarray(sample_image("chelsea")[i * 30 : i * 30 + 48, :64]).save(images / f"k{i}.png")
    code, _, _ = run(
        capsys, "eval", images, "--codecs", "webp", "--codec-qualities", "0,50,95", "--out", tmp_path / "a"
    )
    assert code == 0

    from jaxlic.evaluation import codecs

    def no_codec(*args, **kwargs):
        raise AssertionError("a reused codec must not run again")

    monkeypatch.setattr(codecs, "run_codec", no_codec)
    reuse = tmp_path / "a" / "per_image_codecs.csv"
    code, out, err = run(
        capsys,
        "eval",
        images,
        "--models",
        "ckbd",
        "--codecs",
        "webp",
        "--reuse",
        reuse,
        "--out",
        tmp_path / "b",
    )
    assert code == 0 and "matched rate" in out, err
    assert (tmp_path / "b" / "per_image_codecs.csv").read_text() == reuse.read_text()
    # Reusing rows that lack an image evaluated now is a one-line error.
    (images / "k2.png").write_bytes((images / "k0.png").read_bytes())
    code, _, err = run(capsys, "eval", images, "--codecs", "webp", "--reuse", reuse, "--out", tmp_path / "c")
    assert code == 1
    _assert_one_line_error(err, "webp has no results for k2.png")


def _write_rows(path, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["image", "kind", "name", "quality", "height", "width", "bpp", "psnr", "ms_ssim"]
        )
        w.writeheader()
        w.writerows(rows)


def test_compare_command_prints_table_and_writes_summary(tmp_path, capsys):
    codec = [
        {
            "image": f"i{i}",
            "kind": "codec",
            "name": "webp",
            "quality": q,
            "height": 8,
            "width": 8,
            "bpp": b,
            "psnr": 20 + 10 * b + i,
            "ms_ssim": 0.9,
        }
        for i in range(3)
        for q, b in enumerate((0.1, 0.2, 0.4, 0.8))
    ]
    model = [
        {
            "image": f"i{i}",
            "kind": "model",
            "name": "m",
            "quality": 1,
            "height": 8,
            "width": 8,
            "bpp": 0.2,
            "psnr": 20 + 2 + i + 0.5,
            "ms_ssim": 0.9,
        }
        for i in range(3)
    ]
    _write_rows(tmp_path / "per_image_codecs.csv", codec)
    _write_rows(tmp_path / "per_image_m.csv", model)
    code, out, _ = run(
        capsys,
        "compare",
        tmp_path / "per_image_m.csv",
        tmp_path / "per_image_codecs.csv",
        "--json",
        tmp_path / "summary.json",
    )
    assert code == 0 and "webp" in out
    cell = json.loads((tmp_path / "summary.json").read_text())["matched_rate"]["m"]["webp"]
    assert cell["mean_db"] == pytest.approx(0.5, abs=1e-9) and cell["n"] == 3 and cell["outside"] == 0
    # An image the codec never saw is a one-line error.
    _write_rows(tmp_path / "per_image_m.csv", model + [{**model[0], "image": "other"}])
    code, _, err = run(capsys, "compare", tmp_path / "per_image_m.csv", tmp_path / "per_image_codecs.csv")
    assert code == 1
    _assert_one_line_error(err, "no results for other")
    code, _, err = run(capsys, "compare", tmp_path / "missing.csv")
    assert code == 1
    _assert_one_line_error(err, "no such per-image results file")


def test_bdrate_command(tmp_path, capsys):
    a = {"name": "a", "results": {"bpp": [0.1, 0.2, 0.4, 0.8], "psnr-rgb": [28, 30, 32, 34]}}
    b = {"name": "b", "results": {"bpp": [0.09, 0.18, 0.36, 0.72], "psnr-rgb": [28, 30, 32, 34]}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    code, out, _ = run(capsys, "bdrate", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 0 and "-10.00 %" in out
    code, _, err = run(capsys, "bdrate", tmp_path / "a.json", tmp_path / "missing.json")
    assert code == 1
    _assert_one_line_error(err, "no such file")


def test_convert_stub_without_converter_is_one_line_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "jaxlic.convert", None)  # makes the import fail
    import jaxlic

    monkeypatch.delattr(jaxlic, "convert", raising=False)
    code, _, err = run(capsys, "convert-compressai", "x.pth")
    assert code == 1
    _assert_one_line_error(err, "conversion is not available")


def _png16_rgb(path, array):
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    import struct

    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag, data):
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_16bit_rgb_png_is_reduced_with_a_note(tmp_path):
    a = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000
    img, notes = read_image(_png16_rgb(tmp_path / "rgb16.png", a))
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert np.abs(img.astype(int) - a / 257).max() <= 1
    assert notes == ["16-bit per channel PNG reduced to 8 bits per channel"]


def test_eval_and_compare_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "eval", empty, "--codecs", "jpeg", "--out", tmp_path / "o")
    assert code == 1
    _assert_one_line_error(err, "no images")
    code, _, err = run(capsys, "eval", tmp_path / "nowhere", "--codecs", "jpeg", "--out", tmp_path / "o")
    assert code == 1
    _assert_one_line_error(err, "not a folder")
    code, _, err = run(capsys, "eval", empty, "--codecs", "gif", "--out", tmp_path / "o")
    assert code == 1
    (tmp_path / "codecs.csv").write_text(
        "image,kind,name,quality,height,width,bpp,psnr,ms_ssim\nk.png,codec,webp,1,8,8,0.1,30,0.9\nk.png,codec,webp,2,8,8,0.4,34,0.9\n"
    )
    (tmp_path / "model.csv").write_text(
        "image,kind,name,quality,height,width,bpp,psnr,ms_ssim\nk.png,model,m,1,8,9,0.2,32,0.9\n"
    )
    code, _, err = run(capsys, "compare", tmp_path / "model.csv", tmp_path / "codecs.csv")
    assert code == 1
    _assert_one_line_error(err, "not the same image")
    code, _, err = run(capsys, "compare", tmp_path / "codecs.csv")
    assert code == 1
    _assert_one_line_error(err, "at least one model and one codec")


def test_compare_files_of_a_model_against_a_baseline_model(tmp_path, capsys):
    header = "image,kind,name,quality,height,width,bpp,psnr,ms_ssim\n"

    def curve(path, offset):
        lines = [
            f"k{i}.png,model,m,{q},8,8,{b},{30 + 4 * np.log2(b) + i + offset},0.9"
            for i in range(3)
            for q, b in enumerate((0.1, 0.2, 0.4, 0.8))
        ]
        path.write_text(header + "\n".join(lines) + "\n")
        return path

    new, old = curve(tmp_path / "per_image_m-new.csv", 0.25), curve(tmp_path / "per_image_m-old.csv", 0.0)
    code, out, err = run(
        capsys, "compare", new, "--against", old, "--at-bpp", "0.3", "--json", tmp_path / "s.json"
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    # Both files name their model m: the files name the sides.
    assert (summary["test"], summary["baseline"]) == ("m-new", "m-old")
    assert summary["matched_rate"]["m-new q1"]["m-old"]["mean_db"] == pytest.approx(0.25)
    assert summary["at_bpp"]["0.3"]["mean_db"] == pytest.approx(0.25) and "provenance" in summary
    assert "m-new − m-old, both curves read at 0.3 bpp: +0.250 dB" in out
    code, _, err = run(capsys, "compare", new, "--against", old, "--against-model", "ckbd")
    assert code == 1
    _assert_one_line_error(err, "--against")
    code, _, err = run(capsys, "compare", new, "--weights", "w.msgpack")
    assert code == 1
    _assert_one_line_error(err, "--against-model")


class Sharper:
    """A known better variant of a codec: its own streams, decoded halfway back to the image it
    coded last (the error halves: about 6 dB better at exactly the same rate)."""

    def __init__(self, codec):
        self.codec, self.name, self.quality = codec, codec.name, codec.quality
        self.rate_range, self.default_rate, self.max_pixels = (
            codec.rate_range,
            codec.default_rate,
            codec.max_pixels,
        )

    def check(self, **kwargs):
        self.codec.check(**kwargs)

    def compress(self, img, **kwargs):
        self.img = img
        return self.codec.compress(img, **kwargs)

    def decompress(self, data):
        recon = self.codec.decompress(data).astype(np.float64)
        return np.round((recon + self.img) / 2).astype(np.uint8)

    def estimate_bpp(self, img, *, rate=None):
        return self.codec.estimate_bpp(img, rate=rate)

    last_rate = property(lambda self: self.codec.last_rate)
    last_rate_search = property(lambda self: self.codec.last_rate_search)
    last_refine = property(lambda self: self.codec.last_refine)
    last_timings = property(lambda self: self.codec.last_timings)


def test_compare_codes_images_with_two_models_itself_zero_and_a_better_variant_wins(
    tmp_path, capsys, fake_zoo, vr_codec
):
    from jaxlic.rdcodec import RDCodec

    if "codec" not in _VR:
        _VR["codec"] = vr_codec()
    base = _VR["codec"]  # a tiny random variable-rate model
    better = Sharper(base)
    assert isinstance(better, RDCodec)
    fake_zoo.load = lambda name=None, quality=None, weights=None: better if "better" in str(weights) else base
    images = tmp_path / "imgs"
    images.mkdir()
    # Crops on which the tiny model's PSNR grows with its rate at these three rates (a curve
    # without dominated points, so that each point is on its own Pareto front).
    for name in ("chelsea", "astronaut"):
        Image.fromarray(sample_image(name)[:48, :64]).save(images / f"{name}.png")
    same = (
        "compare",
        images,
        "--weights",
        "base.msgpack",
        "--against-weights",
        "base.msgpack",
        "--rates",
        "0,3,7",
    )
    code, out, err = run(capsys, *same, "--json", tmp_path / "same.json")
    assert code == 0, err
    same = json.loads((tmp_path / "same.json").read_text())
    assert (same["test"], same["baseline"]) == ("base", "base (baseline)")
    assert set(same["matched_rate"]) == {"base q0", "base q3", "base q7"}
    for point in same["matched_rate"].values():
        s = point["base (baseline)"]
        assert s["mean_db"] == 0.0 and s["ci95"][0] <= 0.0 <= s["ci95"][1] and s["n"] == 2, s
    bd = same["bd_rate"]["base"]["base (baseline)"]
    assert bd["mean_pct"] == pytest.approx(0.0, abs=1e-9) and bd["ci95"][0] <= 0 <= bd["ci95"][1]
    code, out, err = run(
        capsys,
        "compare",
        images,
        "--weights",
        "better.msgpack",
        "--against-weights",
        "base.msgpack",
        "--rates",
        "0,3,7",
        "--json",
        tmp_path / "better.json",
    )
    assert code == 0, err
    better = json.loads((tmp_path / "better.json").read_text())
    for point in better["matched_rate"].values():
        s = point["base"]
        assert s["n"] == 2 and s["mean_db"] > 3 and s["ci95"][0] > 3, s
    assert "better q3" in out and "model − baseline" in out


# ------------------------------------------------------------------------------------ variable rate

_VR = {}


@pytest.fixture
def vr_zoo(fake_zoo, vr_codec):
    """The fake zoo, plus a tiny real variable-rate model under the name `ckbd-vr`."""

    def load(name="ckbd-full", quality=None, weights=None):
        if name == "ckbd-vr":
            if "codec" not in _VR:
                _VR["codec"] = vr_codec()
            return _VR["codec"]
        return _fake_load(name, quality, weights)

    fake_zoo.load = load
    return fake_zoo


def test_demo_of_a_variable_rate_model_codes_at_a_target_and_names_its_range(capsys, vr_zoo):
    codec = vr_zoo.load("ckbd-vr")
    code, out, err = run(capsys, "demo", "--sample", "chelsea", "--model", "ckbd-vr")
    assert code == 0 and "one model for every rate: --rate 0..7" in out, err
    sample = sample_image("chelsea")
    lo, hi = (len(codec.compress(sample, rate=q)) for q in codec.rate_range)
    target = 8 * (lo * hi) ** 0.5 / (sample.shape[0] * sample.shape[1])
    code, out, err = run(capsys, "demo", "--sample", "chelsea", "--model", "ckbd-vr", "--target-bpp", target)
    assert code == 0 and not err and "one model for every rate" not in out
    got = float(out.split("compressed:")[1].split("bytes, ")[1].split(" bpp")[0])
    assert abs(got - target) <= 0.03 * target
    # The estimate is at the rate parameter the search found, not at the default one.
    estimate = float(out.split("estimated:")[1].split(" bpp")[0])
    assert estimate == pytest.approx(codec.estimate_bpp(sample, rate=codec.last_rate), abs=1e-4)


def test_variable_rate_rate_is_a_float_kept_in_the_header(tmp_path, png, capsys, vr_zoo):
    code, out, err = run(capsys, "compress", png, tmp_path / "a.jlic", "--model", "ckbd-vr", "--rate", "1.37")
    assert code == 0 and "rate parameter 1.37" in out and not err, err
    code, out, _ = run(capsys, "info", tmp_path / "a.jlic")
    assert code == 0 and "rate:     1.37" in out and "extra:" not in out
    code, out, _ = run(capsys, "decompress", tmp_path / "a.jlic", tmp_path / "b.png")
    assert code == 0 and "rate parameter 1.37" in out
    assert read_image(tmp_path / "b.png")[0].shape == IMG.shape


def test_quality_of_a_variable_rate_model_is_a_deprecated_alias_of_rate(tmp_path, png, capsys, vr_zoo):
    code, out, err = run(
        capsys, "compress", png, tmp_path / "a.jlic", "--model", "ckbd-vr", "--quality", "1.37"
    )
    assert code == 0 and "rate parameter 1.37" in out
    assert err == "jaxlic: note: --quality of a variable-rate model is deprecated: use --rate\n"
    run(capsys, "compress", png, tmp_path / "b.jlic", "--model", "ckbd-vr", "--rate", "1.37")
    assert (tmp_path / "a.jlic").read_bytes() == (tmp_path / "b.jlic").read_bytes()
    code, out, _ = run(capsys, "compress", "--help")
    assert "deprecated alias of --rate" in " ".join(out.split())


def test_variable_rate_target_size(tmp_path, png, capsys, vr_zoo):
    codec = vr_zoo.load("ckbd-vr")
    lo, hi = len(codec.compress(IMG, rate=0.0)), len(codec.compress(IMG, rate=codec.rate_range[1]))
    target = round((lo * hi) ** 0.5)
    code, out, err = run(
        capsys, "compress", png, tmp_path / "a.jlic", "--model", "ckbd-vr", "--target-size", target
    )
    assert code == 0 and not err
    assert abs(os.path.getsize(tmp_path / "a.jlic") - target) <= 0.03 * target
    # Out of reach: the nearest reachable stream, a one-line note on stderr, exit 0.
    code, out, err = run(
        capsys, "compress", png, tmp_path / "b.jlic", "--model", "ckbd-vr", "--target-bpp", 50
    )
    assert code == 0 and err.startswith("jaxlic: note: ") and err.count("\n") == 1
    assert os.path.getsize(tmp_path / "b.jlic") == hi


@pytest.mark.parametrize(
    "args",
    [
        ("--model", "ckbd-vr", "--rate", "nan"),
        ("--model", "ckbd-vr", "--rate", "-1"),
        ("--model", "ckbd-vr", "--rate", str(len(registry.VR_LAMBDAS) - 0.5)),
        ("--model", "ckbd-vr", "--quality", str(len(registry.VR_LAMBDAS) - 0.5)),
        ("--model", "ckbd-vr", "--target-size", "20"),
        ("--model", "ckbd-vr", "--target-size", "0"),
        ("--model", "ckbd-vr", "--target-bpp", "inf"),
        ("--model", "ckbd-vr", "--rate", "1", "--target-bpp", "0.5"),
        ("--model", "ckbd-vr", "--rate", "1", "--quality", "1"),
        ("--model", "ckbd-vr", "--target-size", "900", "--target-bpp", "0.5"),
        ("--model", "ckbd-full", "--target-bpp", "0.5"),
        ("--model", "ckbd-full", "--quality", "1.5"),
        ("--model", "ckbd-full", "--rate", "1"),
    ],
)
def test_variable_rate_bad_values_exit_2(tmp_path, png, capsys, vr_zoo, args):
    code, _, err = run(capsys, "compress", png, tmp_path / "a.jlic", *args)
    assert code == 2 and err.strip().splitlines()[-1].startswith("jaxlic compress: error: "), err
    assert not os.path.exists(tmp_path / "a.jlic")


# ------------------------------------------------------------------------------------ batch mode


def _photos(folder, n=3):
    """n small PNGs in `folder` (photo0.png, ...), each a different crop of the sample."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo{i}.png"
        Image.fromarray(sample_image("chelsea")[i * 20 : i * 20 + 40, :56]).save(path)
        paths.append(path)
    return paths


def test_batch_takes_files_folders_and_globs_and_keeps_the_names(tmp_path, capsys, fake_zoo):
    paths = _photos(tmp_path / "a")
    other = tmp_path / "b"
    other.mkdir()
    Image.fromarray(IMG).save(other / "x.jpg", quality=95)
    (other / "notes.txt").write_text("not an image, not in a folder's list")
    loads = []
    fake_zoo.load = lambda *a, **k: loads.append(1) or _fake_load(*a, **k)
    code, out, err = run(
        capsys, "compress", tmp_path / "a", str(other / "*.jpg"), paths[0], "--out-dir", tmp_path / "s"
    )
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "s")) == [
        "photo0.png.jlic",
        "photo1.png.jlic",
        "photo2.png.jlic",
        "x.jpg.jlic",
    ]
    assert len(loads) == 1  # one codec for the whole batch
    code, out, err = run(capsys, "decompress", tmp_path / "s", "--out-dir", tmp_path / "d")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "d")) == ["photo0.png", "photo1.png", "photo2.png", "x.png"]
    for p in paths:
        np.testing.assert_array_equal(read_image(tmp_path / "d" / p.name)[0], read_image(p)[0])
    np.testing.assert_array_equal(read_image(tmp_path / "d" / "x.png")[0], read_image(other / "x.jpg")[0])
    assert len(loads) == 2  # decompress: one codec per model and quality


def test_batch_piped_output_is_one_line_per_file_and_a_summary(tmp_path, capsys):
    _photos(tmp_path / "a")
    code, out, err = run(capsys, "compress", tmp_path / "a", "--out-dir", tmp_path / "s")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(" -> " in line and "bpp" in line for line in lines[:3])
    assert lines[3].startswith("compressed 3 of 3 files in ") and "bpp over all images" in lines[3]
    assert "\r" not in out + err and "%|" not in out + err  # no progress bar


def test_batch_shows_a_progress_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    _photos(tmp_path / "a")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["compress", str(tmp_path / "a"), "--out-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("compressed 3 of 3 files")
    assert " -> " not in out  # the bar replaces the per-file lines
    bar = terminal.getvalue()
    assert "3/3" in bar and "<" in bar and "file/s" in bar  # count, elapsed<remaining (ETA), rate


def test_batch_reports_bad_inputs_in_one_line_each_and_finishes_the_rest(tmp_path, capsys):
    paths = _photos(tmp_path / "a")
    (tmp_path / "a" / "broken.png").write_bytes(paths[0].read_bytes()[:200])
    (tmp_path / "a" / "text.png").write_text("not a picture")
    code, out, err = run(
        capsys, "compress", tmp_path / "a", tmp_path / "missing.png", "--out-dir", tmp_path / "s"
    )
    assert code == 1
    errors = err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("jaxlic: error: ") for line in errors)
    assert "missing.png: no such file" in errors[0]
    assert any("broken.png" in e for e in errors) and any("text.png: not an image" in e for e in errors)
    assert errors[-1] == "jaxlic: error: 3 input(s) failed (see above)"
    assert "compressed 3 of 6 files" in out and "3 failed" in out
    assert sorted(os.listdir(tmp_path / "s")) == [p.name + ".jlic" for p in paths]  # no debris
    # A corrupted stream in a decompress batch is skipped the same way.
    (tmp_path / "s" / "photo1.png.jlic").write_bytes(b"JLIC garbage")
    code, out, err = run(capsys, "decompress", tmp_path / "s", "--out-dir", tmp_path / "d")
    assert code == 1 and err.count("jaxlic: error: ") == 2 and "photo1.png.jlic" in err
    assert sorted(os.listdir(tmp_path / "d")) == ["photo0.png", "photo2.png"]


def test_batch_internal_errors_do_not_stop_the_batch(tmp_path, capsys):
    _photos(tmp_path / "a", n=2)
    code, _, err = run(capsys, "compress", tmp_path / "a", "--out-dir", tmp_path / "s", "--model", "buggy")
    assert code == 1 and err.count("internal error: ZeroDivisionError") == 2


def test_batch_outputs_need_force_and_names_must_not_clash(tmp_path, capsys):
    paths = _photos(tmp_path / "a", n=2)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "photo0.png.jlic").write_bytes(b"precious")
    code, out, err = run(capsys, "compress", tmp_path / "a", "--out-dir", tmp_path / "s")
    assert code == 1 and "photo0.png.jlic (use --force" in err and "compressed 1 of 2" in out
    assert (tmp_path / "s" / "photo0.png.jlic").read_bytes() == b"precious"
    assert run(capsys, "compress", tmp_path / "a", "--out-dir", tmp_path / "s", "--force")[0] == 0
    assert (tmp_path / "s" / "photo0.png.jlic").read_bytes().startswith(b"JLIC")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "photo0.png").write_bytes(paths[1].read_bytes())
    code, _, err = run(
        capsys, "compress", paths[0], tmp_path / "b" / "photo0.png", "--out-dir", tmp_path / "t"
    )
    assert code == 1 and "is also that of" in err and os.listdir(tmp_path / "t") == ["photo0.png.jlic"]


def test_batch_and_single_forms_usage_errors(tmp_path, png, capsys):
    for argv in (
        ("compress", png),
        ("compress", png, png, tmp_path / "x.jlic"),
        ("compress", "-", png, "--out-dir", tmp_path),
        ("decompress", tmp_path / "a.jlic"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.startswith(f"jaxlic {argv[0]}: error: ") and err.count("\n") == 1, err


def test_compress_and_decompress_through_stdin_and_stdout(tmp_path, png, monkeypatch, capsysbinary):
    import io

    def call(argv, stdin: bytes = b""):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = cli.main([str(a) for a in argv])
        out, err = capsysbinary.readouterr()
        return code, out, err.decode()

    code, out, err = call(["compress", "-", tmp_path / "a.jlic"], png.read_bytes())
    assert code == 0 and out.startswith(b"<stdin> -> ")
    stream = (tmp_path / "a.jlic").read_bytes()
    code, out, err = call(["compress", png, "-"])
    assert code == 0 and out == stream and f"{png} -> <stdout>" in err  # the report goes to stderr
    code, out, err = call(["decompress", "-", "-"], stream)
    assert code == 0 and out.startswith(b"\x89PNG") and "<stdin> -> <stdout>" in err
    (tmp_path / "b.png").write_bytes(out)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0], IMG)
    code, out, err = call(["compress", "-", tmp_path / "c.jlic"], b"not an image")
    assert code == 1 and out == b"" and err.startswith("jaxlic: error: not an image") and err.count("\n") == 1
    code, out, err = call(["decompress", "-", tmp_path / "c.png"], stream[:-5])
    assert code == 1 and "truncated" in err and not (tmp_path / "c.png").exists()


def test_binary_output_is_refused_on_a_terminal(png, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = run(capsys, "compress", png, "-")
    assert code == 1 and out == ""
    _assert_one_line_error(err, "terminal")


def test_timings_say_where_the_time_went(tmp_path, png, capsys):
    code, _, err = run(capsys, "compress", png, tmp_path / "a.jlic", "--timings")
    assert code == 0 and err.startswith("time: imports ")
    for part in ("weights", "compile", "executables", "read", "network", "coding", "write", "total"):
        assert part in err


def test_batch_codes_each_image_at_the_target_size(tmp_path, capsys, vr_zoo):
    paths = _photos(tmp_path / "a", n=2)
    codec = vr_zoo.load("ckbd-vr")
    img = read_image(paths[0])[0]
    lo, hi = len(codec.compress(img, rate=0.0)), len(codec.compress(img, rate=codec.rate_range[1]))
    target = round((lo * hi) ** 0.5)
    code, out, err = run(
        capsys, "compress", *paths, "--out-dir", tmp_path / "s", "--model", "ckbd-vr", "--target-size", target
    )
    assert code == 0, err
    for p in paths:
        assert abs(os.path.getsize(tmp_path / "s" / f"{p.name}.jlic") - target) <= 0.03 * target
    code, _, err = run(
        capsys, "compress", *paths, "--out-dir", tmp_path / "t", "--model", "ckbd-vr", "--target-size", 30
    )
    assert code == 1 and err.count("below the") == 2


# ------------------------------------------------------------------------------------ visual report


def test_eval_report_is_a_self_contained_page_of_crops_and_plots(tmp_path, capsys):
    from html.parser import HTMLParser

    from jaxlic.evaluation.matched import read_rows

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        Image.fromarray(sample_image("chelsea")[i * 30 : i * 30 + 96, :128]).save(images / f"k{i}.png")
    out, report = tmp_path / "res", tmp_path / "res" / "report"
    argv = ["eval", images, "--models", "ckbd-full", "--qualities", "1,3", "--codecs", "jpeg,webp"]
    code, stdout, err = run(capsys, *argv, "--codec-qualities", "10,50,90", "--out", out, "--report", report)
    assert code == 0, err
    assert f"visual report written to {report / 'index.html'}" in stdout

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.sources, self.sections, self.figures, self.text = [], [], [], [], []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            self.tags.append(tag)
            if tag == "img":
                self.sources.append(a["src"])
            if tag == "section" and a.get("class") == "image":
                self.sections.append(a["id"])
            if tag == "figure":
                self.figures.append((self.sections[-1] if self.sections else None, a["class"]))
            for key in ("src", "href"):
                assert not str(a.get(key, "")).startswith(("http:", "https:", "//")), a

        def handle_data(self, data):
            self.text.append(data)

    page = Page()
    page.feed((report / "index.html").read_text())
    assert page.tags[:2] == ["html", "head"] and "style" in page.tags and "script" not in page.tags
    assert "link" not in page.tags  # CSS inline, nothing fetched
    assert all((report / src).is_file() for src in page.sources)  # every image it names exists
    assert {"rd_psnr.png", "rd_ms-ssim.png"} <= set(page.sources)
    assert page.sections == ["k0", "k1"]
    for section in page.sections:
        kinds = [c for s, c in page.figures if s == section]
        assert kinds == ["thumb", "crop original", "crop ours", "crop theirs", "crop theirs"], kinds
    text = " ".join(page.text)
    assert text.count("PSNR") == text.count("MS-SSIM") >= 2 * 3 and "bpp" in text
    # Each codec is shown at its setting whose file is nearest in size to the model's.
    rows = read_rows([out / "per_image_ckbd-full.csv", out / "per_image_codecs.csv"])
    for image in ("k0.png", "k1.png"):
        ours = next(r for r in rows if r["image"] == image and r["kind"] == "model")
        for codec in ("jpeg", "webp"):
            mine = [r for r in rows if r["image"] == image and r["name"] == codec]
            best = min(mine, key=lambda r: abs(r["bpp"] - ours["bpp"]))
            assert (
                report / "crops" / image[:-4] / f"ckbd-full-vs-{codec}_q{int(best['quality'])}.png"
            ).is_file()
    crop = read_image(report / "crops" / "k0" / "original.png")[0]
    assert crop.shape == (96, 128, 3)  # smaller than a crop: the whole image


def test_eval_report_needs_a_model(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(IMG).save(images / "k.png")
    code, _, err = run(
        capsys, "eval", images, "--codecs", "jpeg", "--out", tmp_path / "o", "--report", tmp_path / "r"
    )
    assert code == 1
    _assert_one_line_error(err, "--report")


def test_report_crops_where_the_image_has_detail():
    from jaxlic.evaluation.report import detail_window

    img = np.full((256, 384, 3), 128, np.uint8)
    img[64:192, 256:384] = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert detail_window(img, 128) == (64, 256, 128, 128)
