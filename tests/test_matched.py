"""Per-image matched-rate comparisons (`jaxlic.evaluation.matched`) on synthetic curves."""

import math

import numpy as np
import pytest

from jaxlic.evaluation import matched

RATES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def _row(i, bpp, offset_db, name, quality):
    """Image i at `bpp`: PSNR 30 + 4 log2(bpp) + i + offset, MS-SSIM 10 + log2(bpp) + offset dB."""
    return {
        "image": f"im{i}",
        "name": name,
        "quality": quality,
        "bpp": bpp,
        "psnr": 30 + 4 * math.log2(bpp) + i + offset_db,
        "ms_ssim": 1 - 10 ** (-(10 + math.log2(bpp) + offset_db) / 10),
    }


def _codec(images, offset_db=0.0, rates=RATES, name="codec"):
    """A codec measured at `rates` on every image."""
    return [_row(i, b, offset_db, name, q) for i in images for q, b in enumerate(rates)]


def _model(images, bpps, offset_db=0.0, name="model", quality=1):
    """A model point per image, on the same family of curves shifted by `offset_db`."""
    return [_row(i, b, offset_db, name, quality) for i, b in zip(images, bpps)]


@pytest.mark.parametrize("offset", [1.0, -1.0, 0.37])
def test_a_codec_exactly_offset_db_worse_everywhere_gives_plus_offset(offset):
    images = range(8)
    model = _model(images, np.linspace(0.07, 1.2, 8), offset_db=offset)
    result = matched.matched_rate(model, _codec(images), "psnr")
    assert result["mean_db"] == pytest.approx(offset, abs=1e-9)
    assert result["ci95"] == pytest.approx([offset, offset], abs=1e-9)
    assert result["n"] == 8 and result["outside"] == 0
    ms = matched.matched_rate(model, _codec(images), "ms_ssim")
    assert ms["mean_db"] == pytest.approx(offset, abs=1e-6)


def test_reads_each_image_at_its_own_rate_not_the_average():
    # Image 0 is cheap, image 1 expensive: an averaged curve would mix their rates.
    codec = _codec([0, 1])
    model = _model([0, 1], [0.06, 1.5], offset_db=0.5)
    assert matched.matched_rate(model, codec)["per_image"] == pytest.approx({"im0": 0.5, "im1": 0.5})


def test_images_outside_the_codec_range_are_counted_not_extrapolated():
    images = range(5)
    model = _model(images, [0.01, 0.1, 0.3, 3.0, 0.5], offset_db=0.2)
    result = matched.matched_rate(model, _codec(images))
    assert result["n"] == 3 and result["outside"] == 2
    assert result["images_outside"] == ["im0", "im3"]
    assert result["mean_db"] == pytest.approx(0.2)


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    small = rng.normal(0.3, 0.5, 10)
    large = rng.normal(0.3, 0.5, 1000)
    lo, hi = matched.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = matched.bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 3
    assert matched.bootstrap_ci(small) == matched.bootstrap_ci(small)  # fixed seed


def test_pareto_front_drops_dominated_and_repeated_settings():
    r, v = matched.pareto_front([0.2, 0.1, 0.3, 0.3, 0.25], [30, 28, 29, 31, 29.5])
    assert r.tolist() == [0.1, 0.2, 0.3] and v.tolist() == [28, 30, 31]


def test_missing_image_two_points_and_size_mismatch_are_errors():
    codec = _codec([0, 1])
    with pytest.raises(matched.ComparisonError, match="no results for im2"):
        matched.matched_rate(_model([0, 2], [0.1, 0.1]), codec)
    with pytest.raises(matched.ComparisonError, match="two model points"):
        matched.matched_rate(_model([0, 0], [0.1, 0.2]), codec)
    sized = [{**r, "height": 10, "width": 10} for r in codec]
    other = [{**r, "height": 12, "width": 10} for r in _model([0], [0.1])]
    with pytest.raises(matched.ComparisonError, match="not the same image"):
        matched.matched_rate(other, sized)
    with pytest.raises(matched.ComparisonError, match="no model results"):
        matched.matched_rate([], codec)


def test_per_image_bd_rate_of_a_curve_that_needs_20_percent_less_rate():
    images = range(4)
    # Same quality at 0.8x the rate, for every image.
    model = [
        {**r, "name": "m", "bpp": r["bpp"] * 0.8, "quality": q}
        for q, rate in enumerate(RATES[1:4])
        for r in _model(images, [rate] * 4)
    ]
    result = matched.bd_rate_per_image(model, _codec(images))
    assert result["mean_pct"] == pytest.approx(-20.0, abs=1e-6) and result["n"] == 4


def test_compare_labels_points_of_a_curve_and_adds_bd_rate():
    images = range(3)
    model = _model(images, [0.1] * 3, quality=1) + _model(images, [0.3] * 3, quality=2)
    result = matched.compare(model, _codec(images, name="webp") + _codec(images, -1.0, name="jpeg2000"))
    assert set(result["matched_rate"]) == {"model q1", "model q2"}
    assert result["matched_rate"]["model q1"]["jpeg2000"]["mean_db"] == pytest.approx(1.0)
    assert result["matched_rate"]["model q2"]["webp"]["mean_db"] == pytest.approx(0.0, abs=1e-9)
    assert set(result["bd_rate"]["model"]) == {"webp", "jpeg2000"}
    assert "ΔPSNR" in matched.table(result)


def test_read_rows_rejects_files_without_the_needed_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,bpp\nx,0.1\n")
    with pytest.raises(matched.ComparisonError, match="missing column"):
        matched.read_rows([bad])
    empty = tmp_path / "empty.csv"
    empty.write_text("image,name,bpp,psnr\n")
    with pytest.raises(matched.ComparisonError, match="no rows"):
        matched.read_rows([empty])


# ---------------------------------------------------------------------- a model against a baseline


def test_a_model_against_itself_is_zero_with_a_ci_of_zero():
    images = range(6)
    curve = _codec(images, name="a")
    result = matched.versus(curve, _codec(images, name="b"), at_bpp=(0.1, 0.3))
    for point in result["matched_rate"].values():
        s = point["b"]
        assert s["mean_db"] == 0.0 and s["ci95"] == [0.0, 0.0] and s["n"] == 6 and s["outside"] == 0
    assert result["bd_rate"]["a"]["b"]["mean_pct"] == pytest.approx(0.0, abs=1e-9)
    assert result["at_bpp"]["0.1"]["mean_db"] == 0.0 and result["at_bpp"]["0.3"]["n"] == 6
    assert (result["test"], result["baseline"]) == ("a", "b")


def test_a_better_variant_wins_by_its_margin_and_the_baseline_loses_by_it():
    images = range(6)
    variant, base = _codec(images, 0.4, name="variant"), _codec(images, name="base")
    result = matched.versus(variant, base, at_bpp=(0.2,))
    inside = [p["base"] for p in result["matched_rate"].values() if p["base"]["n"]]
    assert inside and all(s["mean_db"] == pytest.approx(0.4) and s["ci95"][0] > 0 for s in inside)
    assert result["at_bpp"]["0.2"]["mean_db"] == pytest.approx(0.4)
    assert result["bd_rate"]["variant"]["base"]["mean_pct"] < 0  # less rate for the same PSNR
    reverse = matched.versus(base, variant)
    assert all(
        p["variant"]["mean_db"] == pytest.approx(-0.4)
        for p in reverse["matched_rate"].values()
        if p["variant"]["n"]
    )
    text = matched.table(result)
    assert "model − baseline" in text and "read at 0.2 bpp: +0.400 dB" in text


def test_versus_refuses_one_name_on_both_sides_several_models_and_other_images():
    images = range(3)
    with pytest.raises(matched.ComparisonError, match="both sides"):
        matched.versus(_codec(images, name="m"), _codec(images, name="m"))
    with pytest.raises(matched.ComparisonError, match="one model"):
        matched.versus(_codec(images, name="a") + _codec(images, name="c"), _codec(images, name="b"))
    with pytest.raises(matched.ComparisonError, match="different images"):
        matched.versus(_codec(range(4), name="a"), _codec(images, name="b"))


def test_same_points_removes_the_bias_of_comparing_a_sparse_curve_with_a_dense_one():
    def curve(points, name):
        return [
            {
                "image": f"im{i}",
                "name": name,
                "quality": q,
                "bpp": b,
                "psnr": 30 + 5 * math.log(b) - 2 * b**2 + 0.1 * i,
            }
            for i in range(4)
            for q, b in points
        ]

    dense = curve([(q, 0.03 * 1.5**q) for q in range(11)], "dense")
    sparse = curve([(q, 0.03 * 1.5**q) for q in (0, 5, 10)], "sparse")  # the same model, 3 points
    biased = matched.bd_rate_per_image(sparse, dense)["mean_pct"]
    fair = matched.bd_rate_per_image(sparse, matched.same_points(sparse, dense))["mean_pct"]
    assert abs(biased) > 1.0  # the interpolation error of 3 points, not a difference of models
    assert abs(fair) < 1e-6
    with pytest.raises(matched.ComparisonError, match="no results at rate point"):
        matched.same_points(curve([(12, 4.0)], "x"), dense)
