"""Exact integer entropy coding (jaxlic.entropy.exact): tables, integer CDFs, round trips, jax parity."""

import ast
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from jaxlic.entropy import exact, mixture
from jaxlic.errors import BitstreamError

ROOT = pathlib.Path(__file__).resolve().parents[1]
ONE = 1 << exact.PHI_BITS
TOTAL = 1 << exact.PRECISION


def _tables():
    with np.load(exact.TABLES_PATH, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


T = _tables()
SIGMA = T["sigma_q32"] / 2.0**32  # float64, within 2**-33 of the exact grid (test reference only)


def _float_mixture_pmf(y, w, m, s):
    """Float reference: sum_k w_k/256 P_k(unit bin around y), tails evaluated on the lower side."""
    v = np.abs(np.asarray(y, np.float64)[:, None] - m / exact.MEAN_RES)
    p = ndtr((0.5 - v) / s) - ndtr((-0.5 - v) / s)
    return (w / exact.WEIGHT_TOTAL * p).sum(-1)


def _random_mixture(n, k, seed, *, spread=2.0):
    """Integer parameters of a plausible latent (components near a common centre) and samples."""
    rng = np.random.default_rng(seed)
    center = rng.normal(size=(n, 1)) * spread
    logit16 = np.rint(rng.normal(size=(n, k)) * 1.5 * 16).astype(np.int64)
    means = np.rint((center + rng.normal(size=(n, k)) * 0.7) * 64).astype(np.int64)
    scales_q16 = np.rint(np.exp(rng.normal(np.log(0.9), 1.0, (n, k))) * 2**16).astype(np.int64)
    w = exact.weights_from_logits(logit16).astype(np.int64)
    lv = exact.levels_from_fixed(np.minimum(scales_q16, 2**31 - 1), np.full(k, 16)).astype(np.int64)
    comp = np.minimum((rng.random(n)[:, None] * 256 >= np.cumsum(w, 1)).sum(1), k - 1)
    rows = np.arange(n)
    y = np.rint(means[rows, comp] / 64 + rng.normal(size=n) * SIGMA[lv[rows, comp]]).astype(np.int64)
    return y, w, means, lv


# ------------------------------------------------------------------------------------ tables


@pytest.mark.slow
def test_tables_regenerate_exactly():
    spec = importlib.util.spec_from_file_location(
        "make_exact_tables", ROOT / "tools" / "make_exact_tables.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.self_check()
    fresh = tool.compute_tables()
    assert sorted(fresh) == sorted(T)
    for k, v in fresh.items():
        assert v.dtype == np.int64 and T[k].dtype == np.int64, k
        np.testing.assert_array_equal(v, T[k], err_msg=k)


def test_table_constants():
    assert exact.TABLES_PATH.stat().st_size < 1 << 20
    assert T["meta"].tolist() == exact.table_meta()
    sq = T["sigma_q32"]
    assert sq[0] == round(0.11 * 2**32) and sq[-1] == 256 * 2**32 and (np.diff(sq) > 0).all()
    # midpoints lie strictly between their neighbours, at the geometric mean
    mid = T["mid_q32"]
    assert (sq[:-1] < mid).all() and (mid < sq[1:]).all()
    np.testing.assert_allclose(mid / 2.0**32, np.sqrt(SIGMA[:-1] * SIGMA[1:]), rtol=1e-13, atol=2.0**-31)
    np.testing.assert_allclose(
        SIGMA, 0.11 * (256 / 0.11) ** (np.arange(256) / 255), rtol=1e-13, atol=2.0**-33
    )
    # inv is the rounded reciprocal of 64 sigma in Q40
    np.testing.assert_allclose(T["inv"], 2.0**40 / (64 * SIGMA), rtol=1e-8)
    assert T["inv"][-1] == 2**26
    np.testing.assert_array_equal(T["support_radius"], np.ceil(4 * SIGMA))
    z = -ndtri(0.5e-9)
    np.testing.assert_array_equal(T["table_radius"], np.ceil(SIGMA * z))
    j = np.arange(257)
    assert np.abs(T["exp_table"] - np.maximum(2.0**20 * np.exp(-j / 16), 1)).max() <= 0.5
    np.testing.assert_array_equal(T["exp_table"], mixture._EXP_TABLE)
    phi = T["phi"]
    assert phi.size == 2 * 8 * 2**exact.PHI_FRAC_BITS + 1 and phi[0] == 0 and phi[-1] == ONE
    assert phi[phi.size // 2] == ONE // 2 and (np.diff(phi) >= 0).all()
    np.testing.assert_array_equal(phi + phi[::-1], ONE)  # Phi(-x) = 1 - Phi(x), exactly
    x = np.arange(-(phi.size // 2), phi.size // 2 + 1) / 2.0**exact.PHI_FRAC_BITS
    assert np.abs(phi - ONE * ndtr(x)).max() <= 0.5 + 1e-6


def test_sigma_values_are_float32_grid():
    s = exact.sigma_values()
    assert s.dtype == np.float32 and s.shape == (256,)
    np.testing.assert_allclose(s, SIGMA, rtol=1e-7)
    np.testing.assert_allclose(s, mixture.SCALE_GRID, rtol=1e-6)


# ------------------------------------------------------------------------------ Gaussian CDF


def test_phi_accuracy():
    rng = np.random.default_rng(0)
    for g in range(256):
        r = int(9 * 64 * SIGMA[g]) + 64
        num = np.concatenate([rng.integers(-r, r + 1, 2000), np.arange(-200, 201)])
        p = exact.phi(num, g)
        assert p.dtype == np.int64
        err = np.abs(p / ONE - ndtr(num / (64 * SIGMA[g])))
        assert err.max() <= 2.0**-26, (g, err.max())  # the bound documented in exact.phi


def test_phi_monotone_and_saturating_exhaustive():
    """Every scale level over its whole useful range (|u| <= 8, plus a margin): non-decreasing."""
    for g in range(256):
        r = int(8 * 64 * SIGMA[g]) + 256
        num = np.arange(-r, r + 1)
        p = exact.phi(num, g)
        assert (np.diff(p) >= 0).all(), g
        assert p[0] == 0 and p[-1] == ONE, g
        assert p[r] == ONE // 2  # u = 0
        assert np.abs(p + p[::-1] - ONE).max() <= 4, g  # nearly symmetric (floors differ)
    far = np.array([-(2**62), -(2**40), -(2**24) - 1, 2**24 + 1, 2**40, 2**62])
    np.testing.assert_array_equal(exact.phi(far, 0), [0, 0, 0, ONE, ONE, ONE])
    np.testing.assert_array_equal(exact.phi(far, 255), [0, 0, 0, ONE, ONE, ONE])
    # broadcasting over levels
    p = exact.phi(np.arange(-5, 6)[:, None] * 64, np.arange(256)[None, :])
    assert p.shape == (11, 256) and (np.diff(p, axis=0) >= 0).all()
    with pytest.raises(ValueError):
        exact.phi(0, 256)
    with pytest.raises(TypeError):
        exact.phi(np.array([0.5]), 3)


# ----------------------------------------------------------------------------- integer CDFs


def _check_cdf(cdf, num_symbols):
    assert cdf.dtype == np.int32 and cdf.shape[-1] == num_symbols + 1
    assert (cdf[..., 0] == 0).all() and (cdf[..., -1] == TOTAL).all()
    assert (np.diff(cdf.astype(np.int64), axis=-1) >= 1).all()


def test_quantized_cdf_properties():
    rng = np.random.default_rng(1)
    for num_symbols in [1, 2, 3, 17, 1000, 65535, 65536]:
        for hi in [2, 10, 2**20, 2**40]:
            masses = rng.integers(1, min(hi, 2**46 // num_symbols), (4, num_symbols), dtype=np.int64)
            masses[0, : num_symbols // 2] = 0  # zero masses still get frequency 1
            masses[1] = 0  # an all-zero row becomes uniform
            cdf = exact.quantized_cdf(masses)
            _check_cdf(cdf, num_symbols)
            freq = np.diff(cdf.astype(np.int64), axis=-1)
            assert freq[1].max() - freq[1].min() <= 1
            # exact formula, in Python integers
            for row in (0, 2):
                cum = [0, *np.cumsum(masses[row]).tolist()]
                total = cum[-1]
                want = [c * (TOTAL - num_symbols) // total + j for j, c in enumerate(cum)]
                assert cdf[row].tolist() == want
            # each frequency within one unit of its ideal value plus one
            tot = masses[3].sum()
            if tot:
                ideal = masses[3] * (TOTAL - num_symbols) / tot + 1
                assert np.abs(freq[3] - ideal).max() < 1
    _check_cdf(exact.quantized_cdf([5]), 1)
    _check_cdf(exact.quantized_cdf(np.zeros((2, 3, 4), np.int32)), 4)
    for bad in [np.zeros((2, 0), np.int64), np.zeros(65537, np.int64), [1, -1], [2**47, 0]]:
        with pytest.raises(ValueError):
            exact.quantized_cdf(bad)
    with pytest.raises(TypeError):
        exact.quantized_cdf([0.5, 0.5])


# ------------------------------------------------------------------------------ Gaussian tables


def test_gaussian_tables_valid_and_close_to_float():
    tables = exact.gaussian_tables()
    assert tables is exact.gaussian_tables()  # cached
    assert tables.num_tables == 256 and tables.precision == 16 and tables.cdfs.dtype == np.int32
    radius = T["table_radius"]
    np.testing.assert_array_equal(tables.offsets, -radius)
    np.testing.assert_array_equal(tables.cdf_lengths, 2 * radius + 3)
    for g in range(256):
        n = int(tables.cdf_lengths[g])
        cdf = tables.cdfs[g]
        _check_cdf(cdf[:n], n - 1)
        assert (cdf[n:] == TOTAL).all()
        r = np.arange(-radius[g], radius[g] + 1)
        v = np.abs(r)
        ref = ndtr((0.5 - v) / SIGMA[g]) - ndtr((-0.5 - v) / SIGMA[g])
        p = tables.pmf(g)
        # each symbol's probability: quantisation (1 unit, plus the floor of one unit each symbol
        # takes, shared proportionally) and nothing else
        assert np.abs(p[:-1] - ref).max() <= (2 + (n - 1) * ref.max()) / TOTAL, g
        assert p[-1] <= 2 / TOTAL  # the tails (1e-9) get the minimum frequency


def test_gaussian_round_trip():
    rng = np.random.default_rng(2)
    n = 50000
    levels = rng.integers(0, 256, n)
    levels[:3] = [0, 255, 128]
    sym = np.rint(rng.normal(size=n) * SIGMA[levels]).astype(np.int64)
    sym[3:13] = [2**31 - 1, -(2**31), 10**6, -(10**6), 1566, -1566, 5000, 2, -2, 0]  # escapes
    data = exact.encode_gaussian(sym.reshape(100, 500), levels.reshape(100, 500))
    out = exact.decode_gaussian(data, levels.reshape(100, 500))
    assert out.dtype == np.int32 and out.shape == (100, 500)
    np.testing.assert_array_equal(out.reshape(-1), sym)
    # close to the ideal cost under the float model
    v = np.abs(sym[13:]).astype(np.float64)
    s = SIGMA[levels[13:]]
    ideal = -np.log2(ndtr((0.5 - v) / s) - ndtr((-0.5 - v) / s)).sum()
    assert len(data) * 8 < ideal * 1.02 + 400
    assert exact.encode_gaussian(np.zeros(0, np.int64), np.zeros(0, np.int64)) == b""
    assert exact.decode_gaussian(b"", np.zeros((0, 3), np.int64)).shape == (0, 3)
    with pytest.raises(ValueError):
        exact.encode_gaussian(sym[:5], levels[:4])
    with pytest.raises(ValueError):
        exact.encode_gaussian(sym[:2], [0, 256])
    with pytest.raises(BitstreamError):
        exact.decode_gaussian(data[:-1], levels.reshape(100, 500))


# ------------------------------------------------------------------------------------ mixture


def _ref_phi(num, g):
    """Pure-Python restatement of exact.phi (Python ints, one value)."""
    table, inv = T["phi"], T["inv"]
    num = max(-(2**24), min(2**24, int(num)))
    sat = 8 << 28
    u = max(-sat, min(sat, (num * int(inv[g])) >> 12)) + sat
    idx = min(u >> 16, table.size - 2)
    f = u - (idx << 16)
    lo = int(table[idx])
    return lo + (((int(table[idx + 1]) - lo) * f) >> 16)


# The documented bucket widths (jaxlic.entropy.supports): 2 to 6, then four steps per octave to 1024.
BUCKET_WIDTHS = (
    [2, 3, 4, 5, 6] + [p * q // 4 for p in (8, 16, 32, 64, 128, 256, 512) for q in (4, 5, 6, 7)] + [1024]
)


def _ref_row(w, m, lv):
    """Support start and integer CDF of one element, straight from the documented rules."""
    radius = [int(T["support_radius"][g]) for g in lv]
    lo = min((mk >> 6) - r for mk, r in zip(m, radius))
    hi = max((mk >> 6) + r for mk, r in zip(m, radius)) + 1
    need = hi - lo + 1
    if need > exact.MAX_WIDTH:
        width = exact.MAX_WIDTH
        start = sum(a * b for a, b in zip(w, m)) // (256 * 64) - width // 2
    else:
        width = min(b for b in BUCKET_WIDTHS if b >= need)
        start = lo - (width - need) // 2
    cdf_at = [
        sum(wk * _ref_phi(64 * (start + j) - 32 - mk, g) for wk, mk, g in zip(w, m, lv))
        for j in range(width + 1)
    ]
    cum = [c - cdf_at[0] for c in cdf_at] + [cdf_at[-1] - cdf_at[0]]
    total, num_symbols = cum[-1], width + 1
    if total == 0:
        cum, total = list(range(num_symbols + 1)), num_symbols
    return start, [c * (TOTAL - num_symbols) // total + j for j, c in enumerate(cum)]


def _extreme_params(rng, n, k):
    """Random integer parameters covering the corners: tiny and huge scales, far means, K components."""
    w = np.ones((n, k), np.int64)
    extra = rng.multinomial(256 - k, np.ones(k) / k, size=n)
    w += extra
    means = rng.integers(-(2**23), 2**23 + 1, (n, k))
    near = rng.random(n) < 0.7  # most elements: components near each other
    num_near = int(near.sum())
    means[near] = rng.integers(-2000, 2000, (num_near, 1)) + rng.integers(-300, 300, (num_near, k))
    means[:4] = [[2**23] * k, [-(2**23)] * k, [0] * k, [2**23 * (-1) ** i for i in range(k)]]
    levels = rng.integers(0, 256, (n, k))
    levels[4:8] = [[0] * k, [255] * k, [0] * k, [255] * k]
    return w, means, levels


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mixture_rows_match_reference(k):
    rng = np.random.default_rng(10 + k)
    w, m, lv = _extreme_params(rng, 40, k)
    start, rows = exact.mixture_cdf_rows(w, m, lv)
    for i in range(len(rows)):
        ref_start, ref_cdf = _ref_row(w[i].tolist(), m[i].tolist(), lv[i].tolist())
        assert start[i] == ref_start, i
        assert rows[i].tolist() == ref_cdf, i
        _check_cdf(rows[i], rows[i].size - 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mixture_round_trip(k):
    rng = np.random.default_rng(20 + k)
    y, w, m, lv = _random_mixture(3000, k, seed=k)
    w2, m2, lv2 = _extreme_params(rng, 500, k)
    y2 = (m2[:, 0] >> 6) + rng.integers(-3, 4, 500)
    y2[:20] = rng.integers(-(2**31), 2**31, 20)  # escapes, also at the int32 extremes
    y2[20:22] = [2**31 - 1, -(2**31)]
    y = np.concatenate([y, y2])
    w, m, lv = np.concatenate([w, w2]), np.concatenate([m, m2]), np.concatenate([lv, lv2])
    perm = rng.permutation(y.size)
    y, w, m, lv = y[perm], w[perm], m[perm], lv[perm]
    data = exact.encode_mixture(y, w, m, lv)
    out = exact.decode_mixture(data, w, m, lv)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, y)
    # int32 parameters work the same
    assert (
        exact.encode_mixture(y.astype(np.int32), w.astype(np.int32), m.astype(np.int32), lv.astype(np.uint8))
        == data
    )


def test_mixture_empty_and_bad_input():
    empty = np.zeros((0, 3), np.int64)
    assert exact.encode_mixture(np.zeros(0, np.int64), empty, empty, empty) == b""
    assert exact.decode_mixture(b"", empty, empty, empty).shape == (0,)
    y, w, m, lv = _random_mixture(10, 2, seed=0)
    bad_weights = w.copy()
    bad_weights[0, 0] += 1  # sum 257
    zero_weight = w.copy()
    zero_weight[0] = [0, 256]
    for args in [
        (y, bad_weights, m, lv),
        (y, zero_weight, m, lv),
        (y, w, np.full_like(m, 2**23 + 1), lv),
        (y, w, m, np.full_like(lv, 256)),
        (y, w, m, -np.ones_like(lv)),
        (y[:9], w, m, lv),
        (y, w[:, :1], m, lv),
        (y, np.full((10, 17), 1), np.zeros((10, 17), np.int64), np.zeros((10, 17), np.int64)),
    ]:
        with pytest.raises(ValueError):
            exact.encode_mixture(*args)
    with pytest.raises(TypeError):
        exact.encode_mixture(y, w, m / 64, lv)
    with pytest.raises(TypeError):
        exact.encode_mixture(y, w / 256, m, lv)


def test_decoding_depends_on_every_weight_unit():
    y, w, m, lv = _random_mixture(4000, 3, seed=5)
    m[:, 1] += 64 * 3  # components well apart, so moving weight changes the distribution
    lv[:, 2] = np.minimum(lv[:, 2] + 40, 255)
    data = exact.encode_mixture(y, w, m, lv)
    np.testing.assert_array_equal(exact.decode_mixture(data, w, m, lv), y)
    for i, (a, b) in enumerate([(0, 1), (1, 0), (2, 0)]):
        row = int(np.flatnonzero(w[:, b] > 1)[i])
        moved = w.copy()
        moved[row, a] += 1
        moved[row, b] -= 1
        sl = slice(row, row + 1)
        assert exact.mixture_cdf_rows(moved[sl], m[sl], lv[sl])[1][0].tolist() != (
            exact.mixture_cdf_rows(w[sl], m[sl], lv[sl])[1][0].tolist()
        )
        try:
            out = exact.decode_mixture(data, moved, m, lv)
        except BitstreamError:
            continue
        assert (out != y).any()


def test_mixture_bits_match_model():
    y, w, m, lv = _random_mixture(150000, 3, seed=7)
    data = exact.encode_mixture(y, w, m, lv)
    ideal = -np.log2(_float_mixture_pmf(y, w, m, SIGMA[lv])).sum()
    assert abs(len(data) * 8 / ideal - 1) < 0.01, (len(data) * 8, ideal)
    # the float coder of jaxlic.entropy.mixture, given the same parameters, costs about the same
    float_data = mixture.encode_mixture(y, w / 256, m / 64, SIGMA[lv])
    assert abs(len(data) / len(float_data) - 1) < 0.002


# ------------------------------------------------------------------- parameters (numpy == jax)


def test_weights_from_logits_numpy_equals_jax_and_properties():
    rng = np.random.default_rng(3)
    extremes = np.array([[2**31 - 1, -(2**31)], [0, 256], [0, 257], [5, 5], [-(2**31), -(2**31)]])
    cases = [  # one array per K: each shape compiles once
        rng.integers(-(2**31), 2**31, (500, 1)),
        np.concatenate([rng.integers(-50, 50, (400, 2)), extremes]).reshape(5, -1, 2),
        np.concatenate([rng.integers(-100, 100, (500, 3)), rng.integers(-(2**31), 2**31, (500, 3))]),
        np.concatenate([rng.integers(-300, 300, (200, 16)), np.zeros((5, 16), np.int64)]),
    ]
    jit_fn = jax.jit(lambda x: exact.weights_from_logits(x, xp=jnp))
    for lg in cases:
        w = exact.weights_from_logits(lg)
        assert w.dtype == np.int32 and w.shape == lg.shape
        assert (w >= 1).all() and (w.sum(-1) == 256).all()
        np.testing.assert_array_equal(np.asarray(jit_fn(jnp.asarray(lg, jnp.int32))), w)
        if lg.shape[-1] == 3:  # op by op, too
            np.testing.assert_array_equal(
                np.asarray(exact.weights_from_logits(jnp.asarray(lg, jnp.int32), xp=jnp)), w
            )
        # a larger logit never gets a smaller weight (logits are clamped to +-2**29 first), except
        # for the first largest one, which also takes the rounding remainder (possibly negative)
        flat_l = np.clip(lg, -(2**29), 2**29).reshape(-1, lg.shape[-1])
        flat_w = w.reshape(-1, lg.shape[-1])
        first = np.argmax(flat_l, axis=-1)
        for a in range(lg.shape[-1]):
            for b in range(lg.shape[-1]):
                bigger = (flat_l[:, a] > flat_l[:, b]) & (first != a) & (first != b)
                assert (flat_w[bigger, a] >= flat_w[bigger, b]).all()
    # the same rule as the float path of jaxlic.entropy.mixture on logits that are multiples of 1/16
    lg = rng.integers(-400, 400, (1000, 3))
    snapped = mixture.quantize_params(lg / 16, np.zeros(lg.shape), np.ones(lg.shape))[0]
    np.testing.assert_array_equal(exact.weights_from_logits(lg), snapped * 256)
    np.testing.assert_array_equal(exact.weights_from_logits(np.array([[0, 0]])), [[128, 128]])
    with pytest.raises(ValueError):
        exact.weights_from_logits(np.zeros((3, 17), np.int64))
    with pytest.raises(TypeError):
        exact.weights_from_logits(np.zeros((3, 2)))


def test_levels_from_fixed_numpy_equals_jax_and_reference():
    rng = np.random.default_rng(4)
    frac = np.array([0, 4, 8, 13, 16, 20, 24, 30])
    values = np.concatenate(
        [
            rng.integers(-(2**31), 2**31, (3000, frac.size)),
            np.rint(np.exp(rng.uniform(np.log(0.01), np.log(1000), (3000, frac.size))) * 2.0**frac).clip(
                -(2**31), 2**31 - 1
            ),
            # exactly at and next to every threshold
            np.clip(exact.scale_thresholds(frac).T, -(2**31), 2**31 - 1),
            np.clip(exact.scale_thresholds(frac).T + 1, -(2**31), 2**31 - 1),
            [[0] * frac.size, [-1] * frac.size, [2**31 - 1] * frac.size, [-(2**31)] * frac.size],
        ]
    ).astype(np.int64)
    levels = exact.levels_from_fixed(values, frac)
    assert levels.dtype == np.int32 and levels.shape == values.shape
    # float64 reference (exact: mid_q32 < 2**53 and values / 2**frac are exact)
    mids = T["mid_q32"] / 2.0**32
    ref = (mids[None, None, :] < (values / 2.0**frac)[..., None]).sum(-1)
    np.testing.assert_array_equal(levels, ref)
    np.testing.assert_array_equal(
        np.asarray(exact.levels_from_fixed(jnp.asarray(values, jnp.int32), frac, xp=jnp)), levels
    )
    jit_fn = jax.jit(lambda v: exact.levels_from_fixed(v, frac, xp=jnp))
    np.testing.assert_array_equal(np.asarray(jit_fn(jnp.asarray(values, jnp.int32))), levels)
    # monotone in the value, full range of levels
    order = np.argsort(values, axis=0, kind="stable")
    assert (np.diff(np.take_along_axis(levels, order, 0), axis=0) >= 0).all()
    assert levels.min() == 0 and levels.max() == 255
    # a scale exactly on the grid maps to its own level
    grid = exact.levels_from_fixed(np.rint(SIGMA * 2**20).astype(np.int64)[:, None], [20])
    np.testing.assert_array_equal(grid[:, 0], np.arange(256))
    thr = exact.scale_thresholds([0, 30])
    assert thr.shape == (2, 255) and thr.dtype == np.int64 and (np.diff(thr, axis=1) >= 0).all()
    np.testing.assert_array_equal(thr[1], T["mid_q32"] >> 2)
    with pytest.raises(ValueError):
        exact.scale_thresholds([31])
    with pytest.raises(ValueError):
        exact.levels_from_fixed(np.array([[2**31]]), [0])
    with pytest.raises(ValueError):
        exact.levels_from_fixed(np.zeros((4, 3), np.int64), [1, 2])


# ------------------------------------------------------------------------------- static check


def test_module_is_integer_only():
    """exact.py imports no jax / scipy and uses no float math outside the estimate-only sigma_values."""
    tree = ast.parse(pathlib.Path(exact.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
    assert not [m for m in imported if m.split(".")[0] in {"jax", "jaxlib", "scipy", "math", "flax", "cmath"}]
    assert not [m for m in imported if "mixture" in m or "gaussian" in m]  # those import jax and scipy

    float_names = {"float", "float16", "float32", "float64", "floating", "half", "single", "double"}
    math_names = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "power", "ndtr", "ndtri"}
    math_names |= {"erf", "erfc", "erfinv", "rint", "round", "around", "divide", "true_divide", "ldexp"}
    allowed = {"sigma_values"}  # float32 scales for estimates only
    problems = []

    def scan(node, where):
        for sub in ast.walk(node):
            name = getattr(sub, "attr", None) or getattr(sub, "id", None)
            if name in float_names | math_names:
                problems.append((where, sub.lineno, name))
            if isinstance(sub, (ast.BinOp, ast.AugAssign)) and isinstance(sub.op, ast.Div):
                problems.append((where, sub.lineno, "/"))
            if isinstance(sub, ast.Constant) and isinstance(sub.value, float | complex):
                problems.append((where, sub.lineno, sub.value))
            if isinstance(sub, ast.Constant) and sub.value in {
                "f",
                "f2",
                "f4",
                "f8",
                "d",
                "float32",
                "float64",
            }:
                problems.append((where, sub.lineno, sub.value))

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in allowed:
            continue
        scan(node, getattr(node, "name", "module"))
    assert not problems, problems
