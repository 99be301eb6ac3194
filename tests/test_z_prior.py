"""results/zgain/z_prior.py, a finished study's script: count tables charge their own data its entropy;
the per-rate table never loses."""

import numpy as np
import pytest

from results.zgain import z_prior


def test_count_prior_charges_the_entropy_and_escapes_unseen_symbols():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.125])
    sym = rng.choice(4, size=(40000, 2), p=p) - 1  # two channels, symbols -1..2
    prior = z_prior.CountPrior([sym], alpha=0.5)
    entropy = -(p * np.log2(p)).sum()  # 1.75 bits
    assert prior.bits(sym) / sym.size == pytest.approx(entropy, abs=0.01)
    assert list(prior.lo) == [-3, -3] and list(prior.hi) == [4, 4]
    rarest = -prior.log2p[0].min()
    assert prior.bits(np.array([[4, 2]])) - prior.bits(np.array([[2, 2]])) > 0  # margin symbol: rare
    # 9 is 5 past the table's end: the rarest symbol's bits plus Elias gamma of 5 (5 bits)
    channel1 = -prior.log2p[1][0 - prior.lo[1]]
    assert prior.bits(np.array([[9, 0]])) == pytest.approx(rarest + 5 + channel1)


def test_per_rate_tables_fitted_on_the_same_images_never_lose_to_the_pooled_one(vr_codec):
    codec = vr_codec()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
    r = z_prior.z_prior(codec, images, images, [0.0, 3.0, 7.0], alpha=1e-3)
    assert set(r["by_rate"]) == {"0", "3", "7"} and r["images"] == 3
    for q, row in r["by_rate"].items():
        assert row["bpp_z_per_rate"] <= row["bpp_z_pooled"] + 1e-9, q
        assert row["bpp_z_learned"] > 0 and row["bpp_y"] > 0 and 0 <= row["z_live_channels"] <= codec.cfg.N
        # y's and z's bits from the one forward pass add up to the codec's own estimate
        estimate = np.mean([codec.estimate_bpp(img, float(q)) for img in images])
        assert row["bpp_y"] + row["bpp_z_learned"] == pytest.approx(estimate, rel=1e-6)


def test_a_fixed_rate_model_is_a_one_line_error(tmp_path, small_codec, save_codec, capsys):
    path = tmp_path / "w.msgpack"
    save_codec(small_codec("ckbd"), path)
    with pytest.raises(SystemExit) as e:
        z_prior.main(["--weights", str(path), "--train", str(tmp_path), "--images", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a variable-rate model" in err and len(err.splitlines()) == 1
