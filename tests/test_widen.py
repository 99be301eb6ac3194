"""train.widen: a model widened to more latent channels computes what the trained one computes."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import weights, zoo
from jaxlic.models import get_model
from jaxlic.models.compressor import Compressor
from train import widen


def _small(entropy: str, m: int):
    model = get_model("ckbd-full-vr", 1, N=16, M=16, num_rates=3, entropy=entropy, pp_features=8)
    cfg = dataclasses.replace(model.cfg, M=m)
    return Compressor(cfg)


def _perturbed(params, seed=1):
    """Trained-looking params: every array moved off its initialisation (biases included)."""
    rng = np.random.default_rng(seed)
    return {
        k: (
            _perturbed(v, seed + 1)
            if isinstance(v, dict)
            else np.asarray(v) + 0.05 * rng.standard_normal(v.shape)
        )
        for k, v in params.items()
    }


@pytest.mark.parametrize("entropy", ["gmm", "gaussian"])
def test_widened_model_computes_the_same(entropy):
    old_model, new_model = _small(entropy, 16), _small(entropy, 32)
    old = _perturbed(zoo.init_variables(old_model, 0)["params"])
    fresh = zoo.init_variables(new_model, 3)["params"]
    wide = widen.widen_params(old, fresh, old_model.cfg, new_model.cfg)
    x = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
    for rate in (0.0, 2.0):
        r = jnp.asarray([rate])
        a = old_model.apply({"params": old}, x, r, method=Compressor.forward_eval)
        b = new_model.apply({"params": wide}, x, r, method=Compressor.forward_eval)
        np.testing.assert_allclose(b["x_hat"], a["x_hat"], atol=1e-5)
        np.testing.assert_allclose(b["y"][..., :16], a["y"], atol=1e-5)
        np.testing.assert_allclose(b["z"], a["z"], atol=1e-5)
        np.testing.assert_allclose(b["likelihoods"]["y"][..., :16], a["likelihoods"]["y"], rtol=1e-4)
        # the new channels are small and start under the narrowest prior: nearly free
        new_bits = -np.log2(np.asarray(b["likelihoods"]["y"][..., 16:])).sum()
        old_bits = -np.log2(np.asarray(a["likelihoods"]["y"])).sum()
        assert new_bits < 0.01 * old_bits + 1.0
    # not a copy of the fresh model: the new analysis channels are live (they can learn)
    assert np.abs(np.asarray(b["y"][..., 16:])).max() > 0


def test_widen_file_round_trip(tmp_path):
    """The written file holds the wide model under its new M; the trainer's warm start accepts it."""
    from train import spec as spec_lib
    from train.configs import ckbd
    from train.state import load_init_params

    model = get_model("ckbd-full-vr", 1, N=16, M=16, num_rates=8)
    src, dst = tmp_path / "old.msgpack", tmp_path / "wide.msgpack"
    meta = {"model": "ckbd-full-vr", "quality": 0, "N": 16, "M": 16, "config": dataclasses.asdict(model.cfg)}
    weights.save(src, zoo.init_variables(model, 0)["params"], meta)
    assert widen.main([str(src), str(dst), "--M", "32"]) == 0
    codec = zoo.load(weights=dst)
    assert codec.cfg.M == 32 and weights.load(dst)[1]["widened_from"]["M"] == 16
    c = ckbd.get_config("cpu,vr")
    c.N, c.M = 16, 32
    assert load_init_params(str(dst), spec_lib.build_model(c)) is not None


def test_widen_refuses_narrowing(tmp_path):
    model = _small("gmm", 16)
    p = zoo.init_variables(model, 0)["params"]
    with pytest.raises(ValueError, match="larger"):
        widen.widen_params(p, p, model.cfg, model.cfg)


def test_ceiling_linear_bound_rises_with_width_and_is_exact_at_full_width():
    from results.default import ceiling

    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.random((2, 48, 64, 3)), axis=1), axis=2)
    images = [(f"im{i}", (x - x.min()) / (x.max() - x.min())) for i, x in enumerate(smooth)]
    bound = ceiling.linear_bound(images, widths=(8, 64, 768))
    assert bound["8"] < bound["64"] < bound["768"]
    assert bound["768"] > 100  # all 16x16x3 components kept: the blocks come back (up to rounding)


def test_live_widening_keeps_the_reconstruction_and_starts_the_new_channels_live():
    old_model, new_model = _small("gmm", 16), _small("gmm", 32)
    old = _perturbed(zoo.init_variables(old_model, 0)["params"])
    wide = widen.widen_params(
        old, zoo.init_variables(new_model, 3)["params"], old_model.cfg, new_model.cfg, live=True
    )
    exact = widen.widen_params(old, zoo.init_variables(new_model, 3)["params"], old_model.cfg, new_model.cfg)
    x = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
    r = jnp.asarray([2.0])
    a = old_model.apply({"params": old}, x, r, method=Compressor.forward_eval)
    b = new_model.apply({"params": wide}, x, r, method=Compressor.forward_eval)
    c = new_model.apply({"params": exact}, x, r, method=Compressor.forward_eval)
    np.testing.assert_allclose(b["x_hat"], a["x_hat"], atol=1e-5)
    # full-size new latents (larger than the exact start's by 1 / NEW_LATENT_SCALE)
    assert np.abs(np.asarray(b["y"][..., 16:])).mean() > 10 * np.abs(np.asarray(c["y"][..., 16:])).mean()
    # new channel c's prior is old channel c - 16's: the same output columns of the last
    # entropy layer (blocks of logits, means, scales; M x K each, channel-major)
    last = sorted(k for k in wide if k.startswith("entropy_parameters_"))[-1]
    k = np.asarray(wide[last]["kernel"])
    K, M = 3, 32
    for part in range(3):
        for ch in (16, 20, 31):
            dst = part * M * K + ch * K + np.arange(K)
            src = part * M * K + (ch - 16) * K + np.arange(K)
            np.testing.assert_array_equal(k[..., dst], k[..., src])


def test_capacity_probe_trains_the_transforms_towards_the_images(tmp_path):
    """The probe's training lowers the continuous-latent error on what it trains on."""
    from results.default import capacity

    model = get_model("ckbd-full-vr", 1, N=16, M=16, num_rates=3)
    src = tmp_path / "m.msgpack"
    meta = {"model": "ckbd-full-vr", "quality": 0, "N": 16, "M": 16, "config": dataclasses.asdict(model.cfg)}
    weights.save(src, zoo.init_variables(model, 0)["params"], meta)
    smooth = np.cumsum(np.cumsum(np.random.default_rng(0).random((2, 64, 64, 3)), axis=1), axis=2)
    images = ((smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)
    row = capacity.probe(str(src), 2.0, [images] * 40, [("a", images[0]), ("b", images[1])], 3e-3, every=20)
    assert sorted(row["kodak_psnr"]) == [0, 20, 40]
    assert row["kodak_psnr"][40] > row["kodak_psnr"][0] + 3
