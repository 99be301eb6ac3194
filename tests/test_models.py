"""Behaviour of every registered model at tiny widths with random weights."""

import jax
import numpy as np
import pytest

from jaxlic import models
from jaxlic.coding import container
from jaxlic.errors import ModelError
from jaxlic.models.codec import to_input


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    from skimage import data

    img = data.astronaut()[100:164, 200:296]  # 64 x 96 real photo crop
    return np.ascontiguousarray(img) if rng is not None else img


@pytest.mark.parametrize("name", models.list_models())
def test_forward_shapes_and_likelihood_range(name, image, small_codec):
    codec = small_codec(name)
    x = to_input(image)
    train = codec.model.apply(codec.variables, x, method="forward_train", rngs={"noise": jax.random.key(1)})
    ev = codec.forward_eval(image)
    for out in (train, ev):
        assert out["x_hat"].shape == x.shape
        for k in ("y", "z"):
            lik = np.asarray(out["likelihoods"][k])
            assert lik.min() > 0 and lik.max() <= 1.0
    assert ev["likelihoods"]["y"].shape[-1] == codec.cfg.M


@pytest.mark.parametrize("name", models.list_models())
def test_compress_decompress_matches_eval_forward(name, image, small_codec):
    codec = small_codec(name)
    data = codec.compress(image)
    header, sections = container.unpack(data)
    assert (header.model, header.height, header.width) == (name, 64, 96)
    x_hat, (h, w) = codec.decompress_float(data)
    assert (h, w) == (64, 96)
    if codec.cfg.context != "serial":  # serial decoding quantises around means (see compressor doc)
        ref = codec.forward_eval(image)["x_hat"]
        assert np.max(np.abs(x_hat - ref)) < 1e-5
    # Actual size within 2% of the model's estimate, plus container and coder overhead.
    est_bits = codec.estimate_bpp(image) * 64 * 96
    overhead_bits = 8 * (len(data) - sum(len(s) for s in sections)) + 32 * 8 * len(sections)
    assert len(data) * 8 <= est_bits * 1.02 + overhead_bits
    if codec.cfg.context == "serial":
        # The serial stream still decodes to a valid image of the right size.
        assert codec.decompress(data).shape == (64, 96, 3)


@pytest.mark.parametrize("shape", [(1, 1), (97, 61), (64, 64), (13, 70)])
def test_odd_sizes_are_padded_and_cropped(shape, small_codec):
    codec = small_codec("ckbd-full")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    out = codec.decompress(codec.compress(img))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_registry_rejects_unknown_names_and_qualities():
    with pytest.raises(ModelError):
        models.get_model("nope")
    with pytest.raises(ModelError):
        models.get_model("ckbd", quality=42)


def test_a_configuration_that_cannot_be_built_or_coded_is_refused_when_made():
    """One line, when the config is made: not when the model is built or coding starts."""
    from jaxlic.errors import ModelError

    refused = {
        "no attention points": ("mbt2018", dict(attention="fdram")),
        "one position at a time": ("cheng2020-anchor", dict(entropy="gmm")),
        "mean-scale or mixture": ("ckbd", dict(entropy="scale")),
        "exact entropy path needs hyper": ("mbt2018-mean", dict(exact=(8,) * 8)),
        "exact entropy path codes the schedules": ("cheng2020-anchor", dict(exact=(8,) * 8)),
        "does not support z gains": ("ckbd-vr", dict(z_gains=True, exact=(8,) * 8)),
        "expected one of": ("ckbd", dict(transform="zigzag")),
    }
    for match, (name, overrides) in refused.items():
        with pytest.raises(ModelError, match=match) as e:
            models.get_config(name, **overrides)
        assert "\n" not in str(e.value)


def test_registry_widths_tie_m_to_n_where_the_transform_does():
    from jaxlic.models import components, registry

    for name in models.list_models(variable_rate=True):
        cfg = models.get_config(name, N=64)
        assert (cfg.M == 64) == components.TRANSFORMS[cfg.transform].tied_widths, name
    assert registry.default_widths("bmshj2018-hyperprior", 5) == (128, 192)
    assert registry.default_widths("bmshj2018-hyperprior", 6) == (192, 320)
    assert registry.default_widths("cheng2020-anchor", 4) == (192, 192)
    assert registry.default_widths("ckbd-full-vr", 0) == (192, 192)


def test_compressai_counterparts_come_from_the_registry():
    from jaxlic import convert
    from jaxlic.models import registry

    assert convert.COMPRESSAI_MODELS == registry.compressai_models()
    assert registry.compressai_model("cheng2020-attn").qualities == tuple(range(1, 7))
    assert registry.compressai_model("ckbd").context_first
    with pytest.raises(ModelError, match="no CompressAI counterpart"):
        registry.compressai_model("ckbd-full")


def test_family_variants_differ_only_where_configured():
    cfgs = {n: models.get_config(n) for n in ["ckbd", "ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full"]}
    assert cfgs["ckbd"].attention == "none" and cfgs["ckbd-attn"].attention == "fdram"
    assert cfgs["ckbd-gmm"].entropy == "gmm" and cfgs["ckbd-gmm"].K == 3
    assert cfgs["ckbd-pp"].postprocess and not cfgs["ckbd"].postprocess
    full = cfgs["ckbd-full"]
    assert (full.attention, full.entropy, full.postprocess, full.context) == (
        "fdram",
        "gmm",
        True,
        "checkerboard",
    )


def test_tiled_synthesis_bounds_tile_size_and_matches_whole_image(image, small_codec):
    codec = small_codec("ckbd-pp")
    data = codec.compress(image)
    whole, _ = codec.decompress_float(data)
    seen = []
    synth = codec._synthesis

    def spy(v, y):
        seen.append(y.shape)
        return synth(v, y)

    codec._synthesis = spy
    codec.tile, codec.tile_margin = 2, 8  # the margin covers the whole 4 x 8 latent: exact
    exact, _ = codec.decompress_float(data)
    assert len(seen) == 8 and np.array_equal(exact, whole)
    seen.clear()
    codec.tile, codec.tile_margin = 2, 1
    tiled, _ = codec.decompress_float(data)
    assert len(seen) == 8 and max(s[1] for s in seen) <= 4 and max(s[2] for s in seen) <= 4
    assert tiled.shape == whole.shape
