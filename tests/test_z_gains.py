"""z gain units (`ModelConfig.z_gains`, Cui et al. 2021's hyper gains): z's rate follows q."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.coding import container
from jaxlic.errors import ModelError
from jaxlic.models import registry
from jaxlic.models.codec import Codec
from train.configs import ckbd

Q = 1.37  # between trained points 1 and 2
TOP = float(len(registry.VR_LAMBDAS) - 1)


@pytest.fixture(scope="module")
def image():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:228, 200:392])  # z: 2 x 3 x 8


@pytest.fixture(scope="module")
def base(vr_codec):
    return vr_codec("ckbd-vr")


def with_z_gains(base, log_gain) -> Codec:
    """`base`'s parameters in a z-gain twin of its model, z gains `log_gain` [R] (all channels)."""
    model = registry.get_model("ckbd-vr", 3, N=8, z_gains=True)
    log = jnp.broadcast_to(jnp.asarray(log_gain, jnp.float32)[:, None], (base.num_rates, base.cfg.N))
    params = dict(base.variables["params"], z_gain={"log_gain": log}, inv_z_gain={"log_gain": -log})
    return Codec(model, {"params": params}, quality=3)


def test_config():
    with pytest.raises(ModelError, match="z_gains needs a variable-rate model"):
        registry.get_config("ckbd", z_gains=True)
    assert "z_gains" not in registry.get_config("ckbd-vr").to_dict()  # earlier files unchanged
    assert registry.get_config("ckbd-vr", z_gains=True).to_dict()["z_gains"] is True
    c = ckbd.get_config("cpu,vr,zgain")
    assert c.model == "ckbd-full-vr" and c.model_kwargs.z_gains is True
    assert "z_gains" not in ckbd.get_config("cpu,vr").model_kwargs
    with pytest.raises(ValueError, match="needs 'vr'"):
        ckbd.get_config("cpu,zgain")


def test_z_gains_of_one_are_the_model_without_them(base, image):
    twin = with_z_gains(base, np.zeros(base.num_rates))
    a, b = base.forward_eval(image, Q), twin.forward_eval(image, Q)
    np.testing.assert_array_equal(a["x_hat"], b["x_hat"])
    (ha, sa), (hb, sb) = (container.unpack(c.compress(image, quality=Q)) for c in (base, twin))
    assert sa == sb  # the same payload, bit for bit
    # The headers differ only in the fingerprint of the decoder's weights (the twin has z gains).
    assert ha.extra[container.WEIGHTS_KEY] != hb.extra[container.WEIGHTS_KEY]
    drop = {container.WEIGHTS_KEY: 0}
    assert dataclasses.replace(ha, extra={**ha.extra, **drop}) == dataclasses.replace(
        hb, extra={**hb.extra, **drop}
    )


def test_z_rate_follows_the_rate_parameter_and_streams_decode(base, image):
    # A random h_a gives a z that rounds to almost nothing: gains e^6 ... e^10 make it count.
    spread = with_z_gains(base, np.linspace(6.0, 10.0, base.num_rates))

    def z_bytes(codec, q):
        return len(container.unpack(codec.compress(image, quality=q))[1][0])

    assert z_bytes(spread, 0.0) <= z_bytes(spread, Q) < z_bytes(spread, TOP)
    assert z_bytes(base, TOP) < z_bytes(spread, TOP) / 2
    for q in (0.0, Q, TOP):  # the decoder rescales z_hat at the header's q, as the encoder did
        x_hat, _ = spread.decompress_float(spread.compress(image, quality=q))
        np.testing.assert_allclose(x_hat, spread.forward_eval(image, q)["x_hat"], atol=1e-5)
