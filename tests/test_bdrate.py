"""Tests for Bjontegaard metrics: exact synthetic cases, an independent implementation on the
published Kodak curves (read from ../shared at test time, never copied), and error cases."""

import json
import os

import numpy as np
import pytest
from scipy.interpolate import pchip_interpolate

from jaxlic.evaluation import bdrate

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
ANCHORS = os.path.join(SHARED, "anchors", "kodak-published")


def _anchor(name):
    """A published curve; a checkout without the shared data skips, a shared folder without the
    curve fails (a moved or renamed anchor must not turn the check into a skip)."""
    if not os.path.isdir(SHARED):
        pytest.skip(f"no shared data folder at {os.path.abspath(SHARED)}")
    path = os.path.join(ANCHORS, name)
    assert os.path.exists(path), f"published anchor missing: {os.path.abspath(path)}"
    return bdrate.load_rd_json(path)


def _reference_bd_rate(r1, p1, r2, p2, piecewise):
    """Plain re-implementation: dense sampling and the trapezoidal rule, log10 rates."""
    lr1, lr2 = np.log10(r1), np.log10(r2)
    lo, hi = max(min(p1), min(p2)), min(max(p1), max(p2))
    samples = np.linspace(lo, hi, 20001)
    if piecewise:
        o1, o2 = np.argsort(p1), np.argsort(p2)
        v1 = pchip_interpolate(np.asarray(p1)[o1], lr1[o1], samples)
        v2 = pchip_interpolate(np.asarray(p2)[o2], lr2[o2], samples)
    else:
        v1 = np.polyval(np.polyfit(p1, lr1, 3), samples)
        v2 = np.polyval(np.polyfit(p2, lr2, 3), samples)
    avg = (np.trapezoid(v2, samples) - np.trapezoid(v1, samples)) / (hi - lo)
    return (10**avg - 1) * 100


RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNRS = np.array([28.0, 30.5, 33.2, 36.0, 38.9])


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_rate_scaled_curve_gives_exact_bd_rate(method):
    assert bdrate.bd_rate(RATES, PSNRS, 0.8 * RATES, PSNRS, method) == pytest.approx(-20.0, abs=1e-9)
    assert bdrate.bd_rate(RATES, PSNRS, RATES, PSNRS, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_quality_shifted_curve_gives_exact_bd_psnr(method):
    assert bdrate.bd_psnr(RATES, PSNRS, RATES, PSNRS + 0.5, method) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("method, piecewise", [("pchip", True), ("polyfit", False)])
@pytest.mark.parametrize(
    "anchor, test",
    [
        ("bpg_444_x265_ycbcr.json", "vtm.json"),
        ("bpg_444_x265_ycbcr.json", "compressai-cheng2020-anchor_mse_cpu.json"),
    ],
)
def test_published_curves_match_independent_implementation(anchor, test, method, piecewise):
    a, t = _anchor(anchor), _anchor(test)
    ra, pa = bdrate.curve_points(a)
    rt, pt = bdrate.curve_points(t)
    ours = bdrate.bd_rate_curves(a, t, method=method)
    assert ours == pytest.approx(_reference_bd_rate(ra, pa, rt, pt, piecewise), abs=1e-4)


def test_vtm_saves_rate_over_bpg():
    """VTM is known to save roughly a fifth of BPG's rate on Kodak."""
    bpg, vtm = _anchor("bpg_444_x265_ycbcr.json"), _anchor("vtm.json")
    value = bdrate.bd_rate_curves(bpg, vtm)
    assert -25.0 < value < -15.0
    assert bdrate.bd_psnr_curves(bpg, vtm) > 0.5
    # Swapping anchor and test flips the sign.
    assert bdrate.bd_rate_curves(vtm, bpg) > 0


def test_ms_ssim_db_metric_is_derived_from_ms_ssim():
    vtm = _anchor("vtm.json")
    _, db = bdrate.curve_points(vtm, "ms-ssim-db")
    _, raw = bdrate.curve_points(vtm, "ms-ssim")
    np.testing.assert_allclose(db, -10 * np.log10(1 - raw))


def test_psnr_at_bpp_interpolates_and_refuses_extrapolation():
    curve = {"name": "c", "results": {"bpp": list(RATES), "psnr-rgb": list(PSNRS)}}
    assert bdrate.psnr_at_bpp(curve, 0.4) == pytest.approx(33.2)
    assert 30.5 < bdrate.psnr_at_bpp(curve, 0.3) < 33.2
    assert np.isnan(bdrate.psnr_at_bpp(curve, 0.05))


def test_non_overlapping_curves_raise():
    with pytest.raises(bdrate.RDCurveError, match="overlap"):
        bdrate.bd_rate(RATES, PSNRS, RATES, PSNRS + 20)


def test_polyfit_needs_four_points():
    with pytest.raises(bdrate.RDCurveError, match="4 points"):
        bdrate.bd_rate(RATES[:3], PSNRS[:3], RATES[:3], PSNRS[:3], method="polyfit")


def test_load_rd_json_errors(tmp_path):
    with pytest.raises(bdrate.RDCurveError, match="no such file"):
        bdrate.load_rd_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(bdrate.RDCurveError, match="cannot read"):
        bdrate.load_rd_json(bad)
    nobpp = tmp_path / "nobpp.json"
    nobpp.write_text(json.dumps({"name": "x", "results": {"psnr-rgb": [30]}}))
    with pytest.raises(bdrate.RDCurveError, match="bpp"):
        bdrate.load_rd_json(nobpp)
    with pytest.raises(bdrate.RDCurveError, match="ms-ssim"):
        bdrate.curve_points({"results": {"bpp": [0.1], "psnr-rgb": [30]}}, "ms-ssim")
