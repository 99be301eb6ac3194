import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.entropy import lower_bound, quantize


def test_noise_stays_within_half_a_bin():
    x = jnp.linspace(-5, 5, 10_001)
    y = quantize(x, "noise", rng=jax.random.key(0))
    d = np.asarray(y - x)
    assert np.all(np.abs(d) <= 0.5)
    assert d.std() > 0.25  # roughly uniform, std 1/sqrt(12) ~ 0.289


def test_noise_needs_a_key():
    with pytest.raises(ValueError):
        quantize(jnp.zeros(3), "noise")


def test_round_quantizes_to_integers_modulo_offset():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 5)) * 10, jnp.float32)
    offset = jnp.asarray([0.0, 0.25, -0.3, 0.5, 7.7], jnp.float32)
    y = np.asarray(quantize(x, "round", offset=offset))
    np.testing.assert_allclose(
        y, np.rint(np.asarray(x) - np.asarray(offset)) + np.asarray(offset), rtol=0, atol=1e-5
    )
    assert np.all(np.abs(y - np.asarray(x)) <= 0.5 + 1e-5)


def test_ste_has_round_value_and_identity_gradient():
    x = jnp.asarray([0.2, 1.7, -2.6])
    np.testing.assert_array_equal(quantize(x, "ste"), quantize(x, "round"))
    g = jax.grad(lambda v: jnp.sum(quantize(v, "ste") * jnp.arange(3.0)))(x)
    np.testing.assert_allclose(g, [0.0, 1.0, 2.0])


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown quantization mode"):
        quantize(jnp.zeros(2), "floor")


def test_ste_around_an_offset_has_round_values_and_reaches_x_only():
    x = jnp.asarray(np.random.default_rng(1).normal(size=64) * 5, jnp.float32)
    offset = jnp.asarray(np.random.default_rng(2).normal(size=64), jnp.float32)
    np.testing.assert_allclose(
        quantize(x, "ste", offset=offset), quantize(x, "round", offset=offset), atol=1e-6
    )
    gx, go = jax.grad(lambda v, o: jnp.sum(quantize(v, "ste", offset=o) * jnp.arange(64.0)), (0, 1))(
        x, offset
    )
    np.testing.assert_array_equal(gx, np.arange(64.0))
    np.testing.assert_array_equal(go, np.zeros(64))


def test_a_rounding_function_is_applied_to_the_offset_free_values():
    x, offset = jnp.asarray([0.3, 2.2]), jnp.asarray([0.5, -1.0])
    np.testing.assert_array_equal(quantize(x, lambda v: 2 * v, offset=offset), 2 * (x - offset) + offset)
    np.testing.assert_array_equal(quantize(x, jnp.floor), jnp.floor(x))


def test_the_entropy_families_quantise_with_it():
    """Quantisation is written once: a family rounds y around its means through `quantize`."""
    from jaxlic.latent import registry

    y = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 4, 8)) * 4, jnp.float32)
    means = jnp.asarray(np.random.default_rng(4).normal(size=(2, 4, 4, 8)), jnp.float32)
    p = {"means": means, "scales": jnp.ones_like(y)}
    family = registry.family("gaussian")
    for mode in ("round", "ste", jnp.floor):
        assert family.quantize(y, p, mode).tobytes() == quantize(y, mode, offset=means).tobytes()
    mixture = registry.family("gmm")
    assert mixture.quantize(y, p, "ste").tobytes() == quantize(y, "ste").tobytes()
    key = jax.random.key(5)
    assert family.quantize(y, None, "noise", key).tobytes() == quantize(y, "noise", rng=key).tobytes()


def test_lower_bound_passes_gradient_only_when_pushing_up():
    x = jnp.asarray([0.05, 0.05, 0.5, 0.5])
    y = lower_bound(x, 0.11)
    np.testing.assert_allclose(y, [0.11, 0.11, 0.5, 0.5])
    # d/dx of sum(c * y): below the bound only the "push up" direction (negative gradient) passes.
    c = jnp.asarray([1.0, -1.0, 1.0, -1.0])
    g = jax.grad(lambda v: jnp.sum(c * lower_bound(v, 0.11)))(x)
    np.testing.assert_allclose(g, [0.0, -1.0, 1.0, -1.0])
