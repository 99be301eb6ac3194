"""The latent-codec layer (jaxlic/latent): registry, and bit-exact decoding of every model in a
fresh process."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxlic import models
from jaxlic.coding import container
from jaxlic.errors import ModelError
from jaxlic.latent import registry

H, W = 64, 96  # padded to 64 x 128: y 4 x 8, z 1 x 2


def _stream(codec):
    """A real stream of `name` (tiny random model) carrying non-trivial latents.

    Random-init transforms give latents that all round to zero, so the latents here are drawn
    directly (large enough to need escapes) and go through the codec's own host coder.
    """
    name = codec.cfg.name
    rng = np.random.default_rng(sum(map(ord, name)))
    y = (rng.normal(size=(1, 4, 8, codec.cfg.M)) * 4).astype(np.float32)
    z = (rng.normal(size=(1, 1, 2, codec.cfg.N)) * 4).astype(np.float32)
    y.flat[0], z.flat[0] = 300.0, -200.0
    t = {"network_s": 0.0, "coding_s": 0.0}
    sections, check = codec._coder.encode(y, z, t)
    extra = {container.WEIGHTS_KEY: codec.weights_id, container.SYMBOLS_KEY: check}
    data = container.pack(container.Header(name, codec.quality, H, W, extra), sections)
    x_hat, _ = codec.decompress_float(data)
    return data, {"image": codec.decompress(data), "x_hat": x_hat}


@pytest.fixture(scope="module")
def fresh_decodes(tmp_path_factory, small_codec, save_codec):
    """Encodes every registered model here and decodes all the streams in one fresh process, which
    loads the same weights from files (initialising them again there would only cost time)."""
    tmp = tmp_path_factory.mktemp("latent")
    expected = {}
    for name in models.list_models():
        codec = small_codec(name)
        data, expected[name] = _stream(codec)
        (tmp / f"{name}.jlic").write_bytes(data)
        save_codec(codec, tmp / f"{name}.msgpack")
    script = f"""
import numpy as np
from jaxlic import zoo
tmp = {json.dumps(str(tmp))}
for name in {models.list_models()!r}:
    codec = zoo.load(weights=f"{{tmp}}/{{name}}.msgpack")
    data = open(f"{{tmp}}/{{name}}.jlic", "rb").read()
    x_hat, _ = codec.decompress_float(data)
    np.savez(f"{{tmp}}/{{name}}.npz", image=codec.decompress(data), x_hat=x_hat)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=900)
    return {name: (expected[name], np.load(tmp / f"{name}.npz")) for name in models.list_models()}


@pytest.mark.slow
@pytest.mark.xdist_group("latent_fresh")  # one worker: the fixture's subprocess runs once
@pytest.mark.parametrize("name", models.list_models())
def test_every_model_decodes_bit_exactly_in_a_fresh_process(name, fresh_decodes):
    expected, fresh = fresh_decodes[name]
    assert fresh["image"].tobytes() == expected["image"].tobytes()
    assert fresh["x_hat"].tobytes() == np.asarray(expected["x_hat"]).tobytes()
    assert len(np.unique(expected["image"])) > 1  # the latents are not all zero


def test_registry_entries_agree_with_their_classes():
    for name, entry in registry.SCHEDULES.items():
        assert entry.context == (entry.load().mask_type is not None), name
    assert registry.family("gmm", 4).params_per_channel == 12
    assert [registry.family(e).params_per_channel for e in ("scale", "gaussian")] == [1, 2]
    for cfg in map(models.get_config, models.list_models()):
        codec = registry.build_latent_codec(cfg.context, cfg.entropy, cfg.K)
        assert codec.num_sections == {"none": 1, "serial": 1, "checkerboard": 2}[cfg.context]


def test_registry_rejects_unknown_and_incompatible_variants():
    with pytest.raises(ValueError, match="expected one of"):
        registry.check("zigzag", "gaussian")
    with pytest.raises(ValueError, match="expected one of"):
        registry.check("none", "laplace")
    with pytest.raises(ValueError, match="mean-scale or mixture"):
        registry.check("checkerboard", "scale")
    from jaxlic.errors import ModelError

    with pytest.raises(ModelError):
        models.get_config("ckbd", entropy="scale")


def test_a_registered_family_builds_a_latent_codec():
    from jaxlic.latent.families import MeanScaleGaussian

    registry.register_family("mean-scale-2", MeanScaleGaussian)
    try:
        codec = registry.build_latent_codec("checkerboard", "mean-scale-2")
        assert isinstance(codec.family, MeanScaleGaussian) and codec.uses_context
    finally:
        del registry.FAMILIES["mean-scale-2"]
        registry.build_latent_codec.cache_clear()


def test_config_and_registries_import_without_jax():
    code = (
        "import sys, jaxlic.models.registry as r, jaxlic.latent.registry as l; "
        "import jaxlic.models.components, train.configs.ckbd, train.configs.cheng2020; "
        "r.get_config('ckbd-full'); l.check('serial', 'gaussian'); "
        "assert not any(m == 'jax' or m.startswith(('jax.', 'flax')) for m in sys.modules), 'jax imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_pair_that_cannot_be_coded_is_refused_when_the_config_is_made():
    """The serial schedule codes one position at a time; the mixture cannot: refused by `check`
    (and so by `ModelConfig`), not when coding starts."""
    with pytest.raises(ValueError, match="one position at a time"):
        registry.check("serial", "gmm")
    with pytest.raises(ModelError, match="one position at a time"):
        models.get_model("cheng2020-anchor", entropy="gmm")
