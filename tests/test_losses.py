"""The rate-distortion loss with one lambda for the batch and with one per example."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.losses import bits, rd_loss


def _out(key, b=3):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    x = jax.random.uniform(k1, (b, 8, 8, 3))
    out = {
        "x_hat": x + 0.05 * jax.random.normal(k2, x.shape),
        "likelihoods": {
            "y": jax.random.uniform(k3, (b, 2, 2, 4), minval=0.05, maxval=1.0),
            "z": jax.random.uniform(k4, (b, 1, 1, 2), minval=0.05, maxval=1.0),
        },
    }
    return out, x


def test_one_lambda_is_the_usual_batch_loss():
    out, x = _out(jax.random.key(0))
    terms = rd_loss(out, x, 0.01)
    bpp = (bits(out["likelihoods"]["y"]) + bits(out["likelihoods"]["z"])) / (3 * 64)
    mse = jnp.mean(jnp.square(out["x_hat"] - x))
    np.testing.assert_allclose(terms["loss"], 0.01 * 255**2 * mse + bpp, rtol=1e-5)
    np.testing.assert_allclose(terms["bpp"], bpp, rtol=1e-5)


def test_per_example_lambdas_average_each_examples_own_loss():
    out, x = _out(jax.random.key(1))
    lambdas = jnp.asarray([0.002, 0.01, 0.05])
    each = [
        rd_loss(jax.tree_util.tree_map(lambda a, i=i: a[i : i + 1], out), x[i : i + 1], lambdas[i])["loss"]
        for i in range(3)
    ]
    np.testing.assert_allclose(rd_loss(out, x, lambdas)["loss"], np.mean(each), rtol=1e-5)


def test_z_weight_scales_only_zs_rate_in_the_loss():
    out, x = _out(jax.random.key(2))
    full, half = rd_loss(out, x, 0.01), rd_loss(out, x, 0.01, z_weight=0.5)
    np.testing.assert_allclose(full["loss"] - half["loss"], 0.5 * full["bpp_z"], rtol=1e-4)
    for k in ("bpp", "bpp_y", "bpp_z", "mse"):  # the reported terms stay unweighted
        np.testing.assert_allclose(half[k], full[k], rtol=1e-6)
    np.testing.assert_allclose(rd_loss(out, x, 0.01, z_weight=1.0)["loss"], full["loss"], rtol=1e-6)
