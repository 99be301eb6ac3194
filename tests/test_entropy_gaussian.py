import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from jaxlic.entropy.gaussian import (
    SCALE_TABLE,
    build_tables,
    decode_gaussian,
    encode_gaussian,
    gaussian_likelihood,
    scale_indexes,
)

MEANS = [0.0, 0.37, -300.0, 300.25]
SCALES = [0.11, 0.5, 3.0, 40.0, 256.0]


def test_likelihood_sums_to_one_and_matches_scipy():
    ys, ms, ss, seg = [], [], [], []
    for mean in MEANS:
        for scale in SCALES:
            r = int(np.ceil(12 * scale)) + 2
            y = np.arange(np.floor(mean) - r, np.ceil(mean) + r + 1)
            ys.append(y), ms.append(np.full(y.size, mean)), ss.append(np.full(y.size, scale))
            seg.append(np.full(y.size, len(seg)))
    y, m, s, seg = (np.concatenate(a) for a in (ys, ms, ss, seg))
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    lik = np.asarray(gaussian_likelihood(f32(y), f32(m), f32(s)), np.float64)
    totals = np.bincount(seg, weights=lik)
    np.testing.assert_allclose(totals, 1.0, atol=1e-4)
    ref = ndtr((y + 0.5 - m) / s) - ndtr((y - 0.5 - m) / s)
    np.testing.assert_allclose(lik, np.maximum(ref, 1e-9), rtol=2e-3, atol=1e-7)


def test_likelihood_is_accurate_far_in_the_tail():
    lik = float(gaussian_likelihood(jnp.float32(30.0), 0.0, 5.0))
    ref = ndtr(-29.5 / 5) - ndtr(-30.5 / 5)
    assert abs(lik / ref - 1) < 1e-3


def test_scale_indexes_agree_between_numpy_and_jax():
    rng = np.random.default_rng(0)
    t = SCALE_TABLE
    boundary = np.concatenate(
        [
            t,
            np.nextafter(t, np.float32(0)),
            np.nextafter(t, np.float32(np.inf)),
            np.float32([0, -1, 1e-30, 1e30, np.inf, -np.inf, np.nan, 0.11, 256.0]),
        ]
    )
    rand = np.exp(rng.uniform(-4, 7, 10_000)).astype(np.float32)
    s = np.concatenate([boundary.astype(np.float32), rand])
    i_np = scale_indexes(s)
    i_jnp = np.asarray(scale_indexes(jnp.asarray(s)))
    np.testing.assert_array_equal(i_np, i_jnp)
    assert i_np.dtype == np.int32 and i_np.min() == 0 and i_np.max() == 63
    # The chosen table scale is the smallest one >= the scale (clamped to the table's range).
    ok = (s > 0) & (s <= t[-1])
    assert np.all(t[i_np[ok]] >= s[ok])
    assert np.all((i_np[ok] == 0) | (t[np.maximum(i_np[ok] - 1, 0)] < s[ok]))


def test_tables_are_valid():
    tb = build_tables()
    assert tb.num_tables == 64 and build_tables() is tb  # cached
    for t in range(64):
        n = tb.cdf_lengths[t]
        c = tb.cdfs[t, :n]
        assert c[0] == 0 and c[-1] == 2**16 and np.all(np.diff(c) >= 1)
        assert tb.offsets[t] == -(n - 3) // 2


def test_round_trip_with_far_tail_symbols():
    rng = np.random.default_rng(1)
    scales = np.exp(rng.uniform(np.log(0.05), np.log(300), (7, 13, 11))).astype(np.float32)
    sym = np.rint(rng.normal(size=scales.shape) * scales).astype(np.int32)
    sym[0, 0, :5] = [2**31 - 1, -(2**31), 10**6, -(10**6), 50]  # far outside any table
    out = decode_gaussian(encode_gaussian(sym, scales), scales)
    assert out.dtype == np.int32 and out.shape == sym.shape
    np.testing.assert_array_equal(out, sym)


@pytest.mark.parametrize("shape", [(0,), (1,), (1, 1, 1, 1), (0, 4)])
def test_round_trip_empty_and_single(shape):
    sym = np.full(shape, -3, np.int32)
    scales = np.full(shape, 0.2, np.float32)
    np.testing.assert_array_equal(decode_gaussian(encode_gaussian(sym, scales), scales), sym)


def test_bits_close_to_information_content():
    rng = np.random.default_rng(2)
    n = 150_000
    scales = np.exp(rng.normal(np.log(1.2), 1.0, n)).astype(np.float32)
    sym = np.rint(rng.normal(size=n) * scales).astype(np.int32)
    bits = 8 * len(encode_gaussian(sym, scales))
    idx = scale_indexes(scales)
    info_tables = -build_tables().log2_prob(sym, idx).sum()
    lik = np.asarray(gaussian_likelihood(jnp.asarray(sym, jnp.float32), 0.0, jnp.asarray(SCALE_TABLE[idx])))
    info_model = -np.log2(lik.astype(np.float64)).sum()
    print(
        f"gaussian bits/info(tables) = {bits / info_tables:.5f}, bits/info(model) = {bits / info_model:.5f}"
    )
    assert abs(bits / info_tables - 1) < 0.01
    assert abs(bits / info_model - 1) < 0.01


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        encode_gaussian(np.zeros(3, np.int32), np.ones(4))
