"""Tests for the classical-codec baselines: every installed backend round-trips with real sizes."""

import numpy as np
import pytest

from jaxlic.evaluation import codecs
from jaxlic.image_io import sample_image

IMG = sample_image("chelsea")[60:236, 100:276]  # 176x176: large enough for MS-SSIM

BACKENDS = [(name, b) for name in codecs.CODECS for b in codecs.backends(name)]


@pytest.mark.parametrize("name, backend", BACKENDS, ids=[f"{n}-{b}" for n, b in BACKENDS])
def test_backend_round_trip_has_real_size_and_improves_with_quality(name, backend):
    sweep = codecs.DEFAULT_QUALITIES[name]
    low_q, high_q = sweep[len(sweep) // 3], sweep[-2]
    low = codecs.run_codec(name, IMG, low_q, backend=backend)
    high = codecs.run_codec(name, IMG, high_q, backend=backend)
    for r in (low, high):
        assert r["recon"].shape == IMG.shape and r["recon"].dtype == np.uint8
        assert r["bpp"] == pytest.approx(8 * r["size_bytes"] / (176 * 176))
        assert 20 < r["psnr"] < 60
        assert 0.5 < r["ms_ssim"] <= 1.0
        assert r["encoding_time"] > 0 and r["decoding_time"] > 0
    assert high["bpp"] > low["bpp"]
    assert high["psnr"] > low["psnr"]


def test_jpeg_and_webp_are_always_available():
    assert {"jpeg", "webp"} <= set(codecs.available_codecs())


def test_status_names_every_codec_and_gives_reasons():
    status = codecs.codec_status()
    assert set(status) == set(codecs.CODECS)
    for name, text in status.items():
        assert text and (name in codecs.available_codecs()) != text.startswith("unavailable")


def test_unknown_codec_raises_codec_error():
    with pytest.raises(codecs.CodecError, match="unknown codec"):
        codecs.run_codec("gif", IMG, 50)


def test_unavailable_codec_raises_codec_error(monkeypatch):
    """Runs whatever is installed: one codec's backends are made unavailable, as a missing
    library or tool makes them."""
    real = codecs._backends()
    name = codecs.CODECS[0]
    gone = [c[:3] + ("not installed (test)",) + c[4:] for c in real[name]]
    monkeypatch.setattr(codecs, "_backends", lambda: dict(real, **{name: gone}))
    assert name not in codecs.available_codecs()
    with pytest.raises(codecs.CodecError, match="unavailable: not installed"):
        codecs.run_codec(name, IMG, codecs.DEFAULT_QUALITIES[name][0])


def test_small_images_report_nan_ms_ssim():
    r = codecs.run_codec("jpeg", IMG[:32, :48], 75)
    assert np.isnan(r["ms_ssim"]) and r["recon"].shape == (32, 48, 3)


def test_jpeg2000_is_targeted_by_rate():
    for target in (0.1, 0.25, 0.5):
        r = codecs.run_codec("jpeg2000", IMG, target)
        assert r["bpp"] == pytest.approx(target, rel=0.06)
