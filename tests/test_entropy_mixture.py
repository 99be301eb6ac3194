import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from jaxlic.entropy import mixture, supports
from jaxlic.entropy.mixture import (
    SCALE_GRID,
    decode_mixture,
    encode_mixture,
    mixture_likelihood,
    quantize_params,
)
from jaxlic.errors import BitstreamError

K = 3


def _mixture_pmf_np(y, w, m, s):
    y = np.asarray(y, np.float64)[..., None]
    return (w * (ndtr((y + 0.5 - m) / s) - ndtr((y - 0.5 - m) / s))).sum(-1)


def _realistic(n, seed):
    """Mixture params of a plausible latent (components near a common centre) and samples."""
    rng = np.random.default_rng(seed)
    center = rng.normal(size=(n, 1)) * 2
    logits = rng.normal(size=(n, K)) * 1.5
    means = center + rng.normal(size=(n, K)) * 0.7
    scales = np.exp(rng.normal(np.log(0.9), 1.0, (n, K)))
    w, m, s = quantize_params(logits, means, scales)
    comp = np.minimum((rng.random(n)[:, None] > np.cumsum(w, 1)).sum(1), K - 1)
    rows = np.arange(n)
    y = np.rint(m[rows, comp] + rng.normal(size=n) * s[rows, comp]).astype(np.int32)
    return y, w, m, s


def test_likelihood_sums_to_one_and_matches_scipy():
    ys, ps, seg = [], [], []
    for scale in [0.11, 0.5, 3.0, 40.0, 256.0]:
        for mean in [0.0, 0.37, -300.0, 300.25]:
            m = np.array([mean, mean + 2.5, mean - 7.0])
            s = np.array([scale, 1.0, 2.0 * scale])
            lg = np.array([0.3, -1.0, 0.5])
            r = int(np.ceil(12 * 2 * scale)) + 12
            y = np.arange(np.floor(mean) - r, np.ceil(mean) + r + 1)
            (
                ys.append(y),
                ps.append(np.broadcast_to(np.stack([lg, m, s]), (y.size, 3, K))),
                seg.append(np.full(y.size, len(seg))),
            )
    y, p, seg = np.concatenate(ys), np.concatenate(ps), np.concatenate(seg)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    lik = np.asarray(mixture_likelihood(f32(y), f32(p[:, 0]), f32(p[:, 1]), f32(p[:, 2])), np.float64)
    np.testing.assert_allclose(np.bincount(seg, weights=lik), 1.0, atol=1e-4)
    w = np.exp(p[:, 0]) / np.exp(p[:, 0]).sum(-1, keepdims=True)
    ref = _mixture_pmf_np(y, w, p[:, 1], p[:, 2])
    np.testing.assert_allclose(lik, np.maximum(ref, 1e-9), rtol=2e-3, atol=1e-7)


def test_quantize_params_identical_in_numpy_and_jax_and_on_grid():
    rng = np.random.default_rng(0)
    n = 4000
    logits = (rng.normal(size=(n, K)) * rng.choice([0.1, 3, 30], (n, 1))).astype(np.float32)
    means = (rng.normal(size=(n, K)) * rng.choice([0.5, 10, 1e6], (n, 1))).astype(np.float32)
    scales = np.exp(rng.uniform(-5, 7, (n, K))).astype(np.float32)
    logits[:4] = [[0, 0, 0], [np.nan, 1, 2], [np.inf, 0, 0], [-1e30, 1e30, 0]]
    means[:4] = [
        [np.nan, np.inf, -np.inf],
        [1 / 128, -1 / 128, 3 / 128],
        [0.5, -0.5, 1e9],
        [2**17, -(2**17), 0],
    ]
    scales[:4] = [
        [0, -1, np.nan],
        [np.inf, 1e-30, 1e30],
        SCALE_GRID[[0, 100, 255]],
        mixture._SCALE_MIDS[[0, 50, 254]],
    ]
    scales[4:8] = np.nextafter(mixture._SCALE_MIDS[[0, 9, 99, 254]], np.float32(np.inf))[:, None]
    w_np, m_np, s_np = quantize_params(logits, means, scales)
    w_j, m_j, s_j = (
        np.asarray(a) for a in quantize_params(jnp.asarray(logits), jnp.asarray(means), jnp.asarray(scales))
    )
    np.testing.assert_array_equal(w_np, w_j)
    np.testing.assert_array_equal(m_np, m_j)
    np.testing.assert_array_equal(s_np, s_j)
    assert w_np.dtype == m_np.dtype == s_np.dtype == np.float32
    q = w_np * 256
    assert np.all(q == np.rint(q)) and q.min() >= 1 and np.all(q.sum(-1) == 256)
    assert np.all(m_np * 64 == np.rint(m_np * 64)) and np.all(np.abs(m_np) <= 2**17)
    assert np.all(np.isin(s_np, SCALE_GRID))
    ok = np.isfinite(scales) & (scales >= 0.11) & (scales <= 256)
    assert np.all(np.abs(np.log(s_np[ok] / scales[ok])) <= np.log(256 / 0.11) / 255 / 2 + 1e-6)
    # The snapped softmax is close to the real one.
    sm = np.exp(logits[8:] - logits[8:].max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    assert np.abs(w_np[8:] - sm).max() < 0.02


def test_quantize_params_has_straight_through_gradients():
    def f(lg, m, s):
        w, mq, sq = quantize_params(lg, m, s)
        return jnp.sum(w * jnp.arange(K)) + jnp.sum(mq) + jnp.sum(sq)

    lg, m, s = (
        jnp.asarray([[0.1, 0.5, -0.3]]),
        jnp.asarray([[0.3, 1.1, -2.0]]),
        jnp.asarray([[0.05, 1.0, 3.0]]),
    )
    g_lg, g_m, g_s = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(lg, m, s)
    np.testing.assert_allclose(g_m, 1.0)
    np.testing.assert_allclose(g_s, [[0.0, 1.0, 1.0]])  # below the grid only "push up" passes
    assert np.all(np.isfinite(g_lg)) and abs(float(g_lg.sum())) < 1e-6 and float(jnp.abs(g_lg).max()) > 0


def test_round_trip_with_far_tails_and_extreme_params():
    y, w, m, s = _realistic(3000, 1)
    rng = np.random.default_rng(2)
    wide = rng.random(3000) < 0.02  # a few very wide / far-apart mixtures (clipped supports)
    m[wide] = rng.choice([-300.0, 0.0, 300.0], (wide.sum(), K))
    s[wide] = SCALE_GRID[-1]
    y[wide] = np.rint(rng.normal(size=wide.sum()) * 400).astype(np.int32)
    y[:6] = [2**31 - 1, -(2**31), 10**6, -(10**6), 40, -40]
    out = decode_mixture(encode_mixture(y, w, m, s), w, m, s)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize("n", [0, 1])
def test_round_trip_empty_and_single(n):
    y, w, m, s = _realistic(max(n, 1), 3)
    y, w, m, s = y[:n], w[:n], m[:n], s[:n]
    np.testing.assert_array_equal(decode_mixture(encode_mixture(y, w, m, s), w, m, s), y)


def test_bits_close_to_information_content():
    y, w, m, s = _realistic(120_000, 4)
    bits = 8 * len(encode_mixture(y, w, m, s))
    info = -np.log2(np.maximum(_mixture_pmf_np(y, w, m, s), 1e-9)).sum()
    print(f"mixture bits/info = {bits / info:.5f} ({bits / y.size:.3f} bits/symbol)")
    assert abs(bits / info - 1) < 0.01


def test_garbage_data_raises_bitstream_error_or_decodes_bounded():
    _, w, m, s = _realistic(2000, 5)
    with pytest.raises(BitstreamError):
        decode_mixture(b"\x00" * 7, w, m, s)
    for seed in range(4):
        junk = np.random.default_rng(seed).integers(0, 256, 40, dtype=np.uint8).tobytes()
        try:
            out = decode_mixture(junk, w, m, s)
        except BitstreamError:
            continue
        assert out.shape == (2000,)


def test_mismatched_shapes_raise():
    _, w, m, s = _realistic(10, 6)
    with pytest.raises(ValueError):
        encode_mixture(np.zeros(9, np.int32), w, m, s)
    with pytest.raises(ValueError):
        encode_mixture(np.zeros(10, np.int32), w, m[:, :2], s)


# ------------------------------------------------- supports (shared with jaxlic.entropy.exact)


class _UniformPlan(supports.SupportPlan):
    """Every support value and the escape (about) equally likely: an integer CDF of total 2**16, or
    the same CDF as float probabilities."""

    def __init__(self, weights, means, radius, cdf_precision):
        self.cdf_precision = cdf_precision
        super().__init__(weights, means, radius, mean_res=64, chunk_entries=600)

    def rows(self, lo, hi, width):
        cdf = np.arange(width + 2, dtype=np.int64) * (1 << 16) // (width + 1)
        row = cdf if self.cdf_precision else np.diff(cdf) / (1 << 16)
        return np.broadcast_to(row, (hi - lo, row.size))


def test_supports_follow_the_documented_rule_and_code_both_row_kinds():
    rng = np.random.default_rng(8)
    n, k = 400, 3
    w = rng.integers(1, 100, (n, k))
    m = rng.integers(-5000, 5000, (n, k))
    m[:20] = rng.integers(-(2**23), 2**23, (20, k))  # far-apart components: supports over 1024 wide
    r = rng.integers(0, 300, (n, k))
    y = m[:, 0] // 64 + rng.integers(-200, 200, n)
    y[:6] = [2**31 - 1, -(2**31), 10**6, -(10**6), 0, 1]
    widths = (
        [2, 3, 4, 5, 6] + [p * q // 4 for p in (8, 16, 32, 64, 128, 256, 512) for q in (4, 5, 6, 7)] + [1024]
    )

    plan = _UniformPlan(w, m, r, None)
    start = np.empty(n, np.int64)
    start[plan.order] = plan.start
    for i in range(n):
        lo, hi = min(m[i] // 64 - r[i]), max(m[i] // 64 + r[i]) + 1
        need = hi - lo + 1
        width = min((b for b in widths if b >= need), default=1024)
        want = (w[i] @ m[i]) // (w[i].sum() * 64) - 512 if need > 1024 else lo - (width - need) // 2
        assert start[i] == want, i
        assert need > 1024 or lo >= start[i] and hi < start[i] + width, i  # the support is covered
        (chunk,) = [c for c in plan.chunks if c[0] <= np.flatnonzero(plan.order == i)[0] < c[1]]
        assert chunk[2] == width, i
    assert [c[0] for c in plan.chunks] == [0] + [c[1] for c in plan.chunks[:-1]] and plan.chunks[-1][1] == n
    assert all(hi - lo == 1 or (hi - lo) * (width + 2) <= 600 for lo, hi, width in plan.chunks)

    data = plan.encode(y)
    np.testing.assert_array_equal(plan.decode(data), y)
    as_cdf = _UniformPlan(w, m, r, 16)  # integer CDFs: the same floats reach the coder
    assert as_cdf.encode(y) == data
    np.testing.assert_array_equal(as_cdf.decode(data), y)
    with pytest.raises(ValueError):
        plan.encode(y[:-1])
