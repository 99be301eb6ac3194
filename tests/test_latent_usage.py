"""eval.latent_usage: its rates add up to the model's own estimate and it sees dead channels."""

import jax
import numpy as np

from eval.latent_usage import latent_usage
from jaxlic import zoo


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (64, 128, 3), dtype=np.uint8),
        np.repeat(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 8, axis=0).repeat(8, axis=1),
    ]


def test_rates_add_up_to_the_codec_estimate_and_split_anchors():
    codec = zoo.random_codec("ckbd", quality=3, seed=0, N=8, M=8)
    images = _images()
    r = latent_usage(codec, images)
    expected = np.mean([codec.estimate_bpp(img) for img in images])
    np.testing.assert_allclose(r["bpp"], expected, rtol=1e-5)
    np.testing.assert_allclose(r["bpp_anchors"] + r["bpp_nonanchors"], r["bpp_y"], rtol=1e-5)
    assert r["z_channels"] == 8 and len(r["z_bits_per_channel"]) == 8
    assert 0 < r["z_share"] < 1


def test_live_z_channels_follow_the_variation_of_z():
    codec = zoo.random_codec("ckbd", quality=3, seed=0, N=8, M=8)
    params = codec.variables["params"]
    last = max((k for k in params if k.startswith("h_a_")), key=lambda k: int(k.split("_")[-1]))
    kernel = params[last]["kernel"]
    images = [np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)]
    # Amplified, z spans many quantisation bins; zeroed, z is its bias everywhere (a dead hyperprior).
    params[last]["kernel"] = kernel * 1000.0
    live = latent_usage(codec, images)
    params[last] = jax.tree.map(np.zeros_like, params[last])
    dead = latent_usage(codec, images)
    assert live["z_live_channels"] >= 4
    assert dead["z_live_channels"] == 0
