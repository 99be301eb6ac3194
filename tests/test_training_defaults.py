"""The trainer's defaults that match CompressAI's training: straight-through z and y, PyTorch biases."""

import jax
import numpy as np
import pytest

from jaxlic import models, zoo
from jaxlic.models.codec import to_input
from jaxlic.models.init import torch_like_biases


@pytest.fixture(scope="module")
def image():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:228, 200:328])


def _with_biases(codec, seed=0):
    params = torch_like_biases(codec.variables["params"], jax.random.key(seed))
    return {**codec.variables, "params": params}


@pytest.mark.parametrize("name", ["ckbd", "ckbd-gmm"])
def test_mixed_training_pass_decodes_what_the_coder_decodes(name, image):
    """With "mixed" quantisation g_s sees exactly the coder's y_hat, which depends on z_hat through
    the hyper-synthesis: so z must be rounded there too (not noisy), and x_hat cannot depend on
    the training noise."""
    codec = zoo.random_codec(name, quality=3, seed=0, N=8)
    assert codec.cfg.train_quant == "mixed"
    v, x = _with_biases(codec), to_input(image)
    outs = [
        codec.model.apply(v, x, method="forward_train", rngs={"noise": jax.random.key(k)})["x_hat"]
        for k in (1, 2)
    ]
    ev = codec.model.apply(v, x, method="forward_eval")["x_hat"]
    assert float(np.abs(np.asarray(ev)).max()) > 1e-3  # the check below is not between zeros
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    np.testing.assert_allclose(outs[0], ev, atol=1e-4)


def test_noise_training_pass_depends_on_the_noise(image):
    codec = zoo.random_codec("bmshj2018-hyperprior", quality=3, seed=0, N=8, M=12)
    assert codec.cfg.train_quant == "noise"
    v, x = _with_biases(codec), to_input(image)
    a, b = (
        codec.model.apply(v, x, method="forward_train", rngs={"noise": jax.random.key(k)})["x_hat"]
        for k in (1, 2)
    )
    assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) > 1e-4


def test_torch_like_biases_follow_the_kernel_fan_in():
    codec = zoo.random_codec("ckbd", quality=3, seed=0, N=8)
    before = codec.variables["params"]
    after = torch_like_biases(before, jax.random.key(3))
    flat_b = dict(jax.tree_util.tree_flatten_with_path(before)[0])
    flat_a = dict(jax.tree_util.tree_flatten_with_path(after)[0])
    assert flat_b.keys() == flat_a.keys()
    redrawn = []  # |bias| / bound of every redrawn bias
    for path, old in flat_b.items():
        new = np.asarray(flat_a[path])
        name = path[-1].key
        parent = after
        for p in path[:-1]:
            parent = parent[p.key]
        if name == "bias" and "kernel" in parent:
            bound = 1.0 / np.sqrt(np.prod(np.shape(parent["kernel"])[:-1]))
            assert np.abs(new).max() <= bound and np.abs(new).min() > 0
            redrawn.append(np.abs(new).ravel() / bound)
        else:  # kernels, GDN, the entropy bottleneck's own biases: untouched
            np.testing.assert_array_equal(new, np.asarray(old))
    assert len(redrawn) > 20
    ratios = np.concatenate(redrawn)  # uniform over [-bound, bound]: |b| / bound uniform on [0, 1]
    assert 0.4 < ratios.mean() < 0.6 and ratios.max() > 0.95
    again = torch_like_biases(before, jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, again, after)


def test_torch_like_biases_keep_zero_initialised_layers_zero():
    codec = zoo.random_codec("ckbd-pp", quality=3, seed=0, N=8)
    params = torch_like_biases(codec.variables["params"], jax.random.key(0))
    tail = params["post"]["tail"]
    assert not np.any(np.asarray(tail["kernel"])) and not np.any(np.asarray(tail["bias"]))
    assert np.any(np.asarray(params["post"]["head"]["bias"]))


@pytest.fixture(scope="module")
def smoke_setup():
    from train.configs import ckbd
    from train.state import build_train_setup

    return build_train_setup(ckbd.get_config("smoke,ckbd"), jax.devices()[:1])


def test_fresh_training_state_starts_from_torch_like_biases(smoke_setup):
    state = smoke_setup.state
    biases = [
        np.asarray(v)
        for path, v in jax.tree_util.tree_flatten_with_path(state.params)[0]
        if path[-1].key == "bias"
    ]
    assert len(biases) > 20 and all(np.abs(b).max() > 0 for b in biases)
    assert models.get_config("ckbd").train_quant == "mixed"


def test_z_rate_warmup_charges_z_by_step(smoke_setup, image):
    """optim.z_rate_warmup_steps = W: the loss counts z's rate with weight min(1, step / W)."""
    import functools

    import jax.numpy as jnp

    from train.configs import ckbd
    from train.optim import create_learning_rate_schedule, create_optimizer
    from train.step import train_step

    config, t = ckbd.get_config("smoke,ckbd"), smoke_setup
    tx, schedule = create_optimizer(config), create_learning_rate_schedule(config)
    batch = jnp.asarray(np.stack([image[:64, :64], image[64:, 64:]]), jnp.float32) / 255.0
    step = jax.jit(functools.partial(train_step, spec=t.spec, tx=tx, schedule=schedule, z_rate_warmup=100))
    for at, weight in ((0, 0.0), (50, 0.5), (150, 1.0)):
        m = step(t.state.replace(step=jnp.asarray(at, t.state.step.dtype)), batch, t.key)[1]
        assert float(m["bpp_z"]) > 1e-3 and float(m["bpp"]) == pytest.approx(
            float(m["bpp_y"] + m["bpp_z"]), rel=1e-5
        )
        distortion = t.spec.lmbda * 255.0**2 * float(m["mse"])
        expected = distortion + float(m["bpp_y"]) + weight * float(m["bpp_z"])
        # float32 rounding of a loss of a few hundred is ~1e-4; a weight off by 0.5 moves it 5e-3
        assert float(m["loss"]) == pytest.approx(expected, abs=3e-4)
        assert 0.5 * float(m["bpp_z"]) > 10 * 3e-4


def test_hyper_lr_factor_scales_only_the_hyperpriors_updates():
    import jax.numpy as jnp

    from train.configs import ckbd
    from train.optim import create_optimizer

    params = {
        "g_a_0": {"kernel": jnp.ones((2, 2))},
        "h_a_0": {"kernel": jnp.ones((2, 2))},
        "h_s_2": {"bias": jnp.ones((2,))},
        "entropy_bottleneck": {"matrix0": jnp.ones((3,)), "quantiles": jnp.ones((3,))},
    }
    grads = jax.tree.map(lambda p: 0.1 * p, params)

    def updates(factor):
        config = ckbd.get_config("ckbd")
        config.optim.hyper_lr_factor = factor
        config.optim.schedule, config.optim.warmup_steps = "constant", 0  # a non-zero first step
        tx = create_optimizer(config)
        return tx.update(grads, tx.init(params), params)[0]

    base, slow = updates(1.0), updates(0.25)
    for top in ("h_a_0", "h_s_2"):
        for k in base[top]:
            np.testing.assert_allclose(slow[top][k], 0.25 * base[top][k], rtol=1e-6)
    np.testing.assert_allclose(
        slow["entropy_bottleneck"]["matrix0"], 0.25 * base["entropy_bottleneck"]["matrix0"]
    )
    # the main transforms and the aux-fitted quantiles keep their own step
    np.testing.assert_allclose(slow["g_a_0"]["kernel"], base["g_a_0"]["kernel"])
    np.testing.assert_allclose(
        slow["entropy_bottleneck"]["quantiles"], base["entropy_bottleneck"]["quantiles"]
    )
    assert np.abs(np.asarray(base["h_a_0"]["kernel"])).min() > 0
