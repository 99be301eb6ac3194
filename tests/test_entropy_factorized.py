import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.entropy import EntropyBottleneck, factorized

C = 4


@pytest.fixture(scope="module")
def model_and_vars():
    m = EntropyBottleneck(C)
    z = jnp.zeros((1, 2, 2, C))
    v = jax.jit(m.init, static_argnums=2)({"params": jax.random.key(0), "noise": jax.random.key(1)}, z, True)
    # Move medians and spread a little so rounding around a non-zero median is exercised.
    p = dict(v["params"])
    p["quantiles"] = p["quantiles"] + jnp.asarray([0.3, -1.6, 2.25, 0.0])[:, None, None]
    return m, {"params": p}


def test_params_mirror_compressai_shapes(model_and_vars):
    _, v = model_and_vars
    shapes = {k: tuple(a.shape) for k, a in v["params"].items()}
    f = (1, 3, 3, 3, 3, 1)
    for i in range(5):
        assert shapes[f"matrix{i}"] == (C, f[i + 1], f[i])
        assert shapes[f"bias{i}"] == (C, f[i + 1], 1)
    for i in range(4):
        assert shapes[f"factor{i}"] == (C, f[i + 1], 1)
    assert shapes["quantiles"] == (C, 1, 3)
    assert "factor4" not in shapes
    np.testing.assert_allclose(model_and_vars[1]["params"]["quantiles"][0, 0], [-9.7, 0.3, 10.3], rtol=1e-6)


def test_eval_rounds_around_medians_and_training_adds_bounded_noise(model_and_vars):
    m, v = model_and_vars
    z = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3, C)) * 4, jnp.float32)
    med = factorized.medians(v)
    apply = jax.jit(m.apply, static_argnums=2)
    z_hat, lik = apply(v, z, False)
    np.testing.assert_allclose(z_hat, np.rint(np.asarray(z) - med) + med, atol=1e-5)
    assert lik.shape == z.shape and float(lik.min()) >= 1e-9 and float(lik.max()) <= 1
    z_noisy, _ = apply(v, z, True, rngs={"noise": jax.random.key(3)})
    assert float(jnp.abs(z_noisy - z).max()) <= 0.5


def test_likelihood_sums_to_one_over_the_integers(model_and_vars):
    m, v = model_and_vars
    y = jnp.arange(-400.0, 401.0)
    z = jnp.broadcast_to(y[:, None], (y.size, C)).reshape(1, 1, y.size, C)
    lik = jax.jit(lambda v, z: m.apply(v, z, method=m.likelihood))(v, z)
    np.testing.assert_allclose(np.asarray(lik, np.float64).sum(axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_aux_loss_trains_only_the_quantiles(model_and_vars):
    m, v = model_and_vars
    loss, g = jax.jit(jax.value_and_grad(lambda p: m.apply({"params": p}, method="loss")))(v["params"])
    assert float(loss) > 0
    for k, a in g.items():
        if k == "quantiles":
            assert float(jnp.abs(a).sum()) > 0
        else:
            assert float(jnp.abs(a).max()) == 0.0, k


def test_tables_cover_quantile_range(model_and_vars):
    _, v = model_and_vars
    tb = factorized.build_tables(v)
    q = np.asarray(v["params"]["quantiles"], np.float64)[:, 0, :]
    assert tb.num_tables == C
    np.testing.assert_array_equal(tb.offsets, -np.ceil(q[:, 1] - q[:, 0]).astype(int))
    for c in range(C):
        cdf = tb.cdfs[c, : tb.cdf_lengths[c]]
        assert cdf[0] == 0 and cdf[-1] == 2**16 and np.all(np.diff(cdf) >= 1)


@pytest.mark.parametrize("shape", [(2, 6, 5, C), (0, 3, 3, C), (1, 1, 1, C)])
def test_compress_round_trip_matches_eval_rounding(model_and_vars, shape):
    _, v = model_and_vars
    z = np.random.default_rng(1).normal(size=shape).astype(np.float32) * 6
    if z.size:
        z.flat[:3] = [1e5, -3e4, 40.0]  # far tails: escape path
    tables = factorized.build_tables(v)
    data = factorized.encode_symbols(factorized.symbols(z, v["params"]), tables)
    z_dec = factorized.decode_symbols(data, shape, tables).astype(np.float32) + factorized.medians(v)
    med = factorized.medians(v)
    np.testing.assert_array_equal(z_dec, np.rint(z - med) + med)  # == eval-mode z_hat
