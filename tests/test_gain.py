"""Gain units (`jaxlic.layers.gain`, Cui et al. 2021): identity at init, log-linear in between."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.layers.gain import GainUnit, gains_at, interpolation_weights


def test_starts_as_the_identity():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
    unit = GainUnit(num_rates=4, channels=8)
    params = unit.init(jax.random.key(1), x, 0.0)
    np.testing.assert_array_equal(unit.apply(params, x, 2.5), x)


def test_trained_points_use_their_row_and_points_between_interpolate_log_linearly():
    log_gain = jnp.log(jnp.asarray([[1.0, 2.0], [4.0, 8.0], [16.0, 1.0]]))
    np.testing.assert_allclose(gains_at(log_gain, 1.0, 1)[0, 0, 0], [4.0, 8.0], rtol=1e-6)
    np.testing.assert_allclose(gains_at(log_gain, 2.0, 1)[0, 0, 0], [16.0, 1.0], rtol=1e-6)
    # Halfway between rows 0 and 1: geometric means.
    np.testing.assert_allclose(gains_at(log_gain, 0.5, 1)[0, 0, 0], [2.0, 4.0], rtol=1e-6)


def test_per_example_rates_and_clipping():
    log_gain = jnp.log(jnp.asarray([[1.0], [2.0], [4.0]]))
    g = gains_at(log_gain, jnp.asarray([-3.0, 0.0, 1.5, 2.0, 9.0]), 5)[:, 0, 0, 0]
    np.testing.assert_allclose(g, [1.0, 1.0, 2.0 * 2**0.5, 4.0, 4.0], rtol=1e-6)


@pytest.mark.parametrize("num_rates", [1, 2, 5])
def test_interpolation_weights_stay_in_range(num_rates):
    lower, frac = interpolation_weights(jnp.linspace(-1, num_rates + 1, 31), num_rates)
    assert int(lower.min()) >= 0 and int(lower.max()) <= max(num_rates - 2, 0)
    assert float(frac.min()) >= 0.0 and float(frac.max()) <= 1.0
