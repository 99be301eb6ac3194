"""Encoder-side latent refinement (jaxlic/models/refine.py) on tiny random models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import zoo
from jaxlic.errors import ModelError
from jaxlic.models import refine
from jaxlic.models.codec import Codec, to_input

LMBDA = 0.01


@pytest.fixture(scope="module")
def image():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 200:296])  # 64 x 96


def codec_for(name):
    codec = zoo.random_codec(name, quality=3, seed=0, N=8)
    codec.meta["lmbda"] = LMBDA
    return codec


def real_rd_loss(img, data, recon):
    h, w = img.shape[:2]
    mse = np.mean((recon.astype(np.float64) / 255 - img.astype(np.float64) / 255) ** 2)
    return LMBDA * 255**2 * mse + 8 * len(data) / (h * w), 8 * len(data) / (h * w)


@pytest.mark.parametrize("name", ["ckbd-full", "ckbd", "mbt2018-mean"])
def test_straight_through_pass_has_the_values_of_the_rounding_pass(name, image):
    codec = codec_for(name)
    x = to_input(image)
    y, z = codec._analysis(codec.variables, x)
    plain = codec.model.apply(codec.variables, y, z, method="eval_latents")
    ste = codec.model.apply(codec.variables, y, z, "ste", method="eval_latents")
    np.testing.assert_allclose(ste["x_hat"], plain["x_hat"], atol=1e-5)
    for k in ("y", "z"):
        np.testing.assert_allclose(ste["likelihoods"][k], plain["likelihoods"][k], rtol=1e-4)
    # ... and, unlike rounding, passes a gradient to the latents.
    g = jax.grad(
        lambda y: jnp.sum(codec.model.apply(codec.variables, y, z, "ste", method="eval_latents")["x_hat"])
    )(y)
    assert float(jnp.max(jnp.abs(g))) > 0


@pytest.mark.parametrize(
    "name,method,lr", [("ckbd-full", "sga", 0.2), ("ckbd-full", "ste", 0.05), ("mbt2018-mean", "sga", 0.2)]
)
def test_refined_stream_has_a_lower_real_rd_loss_and_decodes_with_a_plain_codec(name, method, lr, image):
    codec = codec_for(name)
    plain = codec.compress(image)
    refined = codec.compress(image, refine_steps=15, refine_lr=lr, refine_method=method)
    r = codec.last_refine
    assert len(r["history"]) == 15
    assert r["loss"] < r["loss_init"]
    assert r["history"][0] == pytest.approx(r["loss_init"])

    # A codec that never refined (the decoder side) reads the refined stream.
    decoder = Codec(codec.model, codec.variables, quality=codec.quality)
    loss_plain, _ = real_rd_loss(image, plain, decoder.decompress(plain))
    loss_refined, _ = real_rd_loss(image, refined, decoder.decompress(refined))
    assert loss_refined < loss_plain
    # The refinement's own (model) loss tracks the real one: rate from the actual bytes.
    assert loss_refined == pytest.approx(r["loss"], rel=0.25)


def test_variable_rate_refinement_uses_the_lambda_of_its_rate_and_keeps_the_rate(image, vr_codec):
    from jaxlic.coding import container  # pylint: disable=g-import-not-at-top
    from jaxlic.models.codec import rate_from_extra  # pylint: disable=g-import-not-at-top

    codec = vr_codec()
    with pytest.raises(ModelError, match="lambdas"):
        codec.compress(image, quality=2.0, refine_steps=1)
    lambdas = [0.001 * 2.0**i for i in range(codec.num_rates)]
    codec.meta["lambdas"] = lambdas
    assert codec.lambda_at(2.0) == pytest.approx(lambdas[2])
    assert codec.lambda_at(2.5) == pytest.approx((lambdas[2] * lambdas[3]) ** 0.5)  # log-linear
    for q in (1.0, 2.5):
        plain = codec.compress(image, quality=q)
        refined = codec.compress(image, quality=q, refine_steps=10, refine_lr=0.2)
        r = codec.last_refine
        assert r["loss"] < r["loss_init"] and codec.last_rate == q
        assert rate_from_extra(container.unpack(refined)[0].extra["rate"]) == np.float32(q)
        decoder = vr_codec()  # no lambdas needed to decode
        scale = codec.lambda_at(q) * 255**2
        h, w = image.shape[:2]

        def loss(data, decoder=decoder, scale=scale, h=h, w=w):
            recon = decoder.decompress(data).astype(np.float64) / 255
            return scale * np.mean((recon - image / 255) ** 2) + 8 * len(data) / (h * w)

        assert loss(refined) < loss(plain)
        # The refinement scores its iterates with the lambda of this rate.
        assert loss(refined) == pytest.approx(r["loss"], rel=0.25)
    with pytest.raises(ModelError, match="target"):
        codec.compress(image, target_bpp=1.0, refine_steps=2)


def test_zero_steps_is_plain_compression_and_a_missing_lambda_is_an_error(image):
    codec = codec_for("ckbd")
    assert codec.compress(image, refine_steps=0) == codec.compress(image)
    with pytest.raises(ModelError, match="unknown refinement method"):
        codec.compress(image, refine_steps=2, refine_method="sgd")
    del codec.meta["lmbda"]
    with pytest.raises(ModelError, match="lambda"):
        codec.compress(image, refine_steps=2)


def test_the_codec_checks_every_argument_before_any_work_and_the_wrappers_pass_them_on(image, vr_codec):
    from jaxlic.rdcodec import RateView, RDCodec, RefinedCodec

    codec, vr = codec_for("ckbd"), vr_codec()
    assert isinstance(codec, RDCodec) and codec.rate_range is None and codec.default_rate is None
    codec.check(refine_steps=3)  # nothing to refuse
    for c, kwargs, words in (
        (codec, {"rate": 1.0}, "fixed-rate"),
        (codec, {"target_bpp": 0.2}, "fixed-rate"),
        (codec, {"refine_steps": -1}, "non-negative"),
        (codec, {"refine_steps": 2, "refine_method": "sgd"}, "unknown refinement method"),
        (vr, {"rate": 1.0, "target_bytes": 900}, "at most one"),
        (vr, {"rate": 7.5}, "outside"),
        (vr, {"target_bytes": 0}, "positive"),
        (vr, {"target_bpp": True}, "positive"),
        (vr, {"target_bytes": 20, "size": (64, 96)}, "below the .*-byte header of a 96x64 image"),
        (vr, {"target_bytes": 900, "refine_steps": 2}, "does not combine"),
        (vr, {"rate": 1.0, "refine_steps": 2}, "lambdas"),
        (RateView(vr, 1.5), {"rate": 2.0}, "held at rate parameter 1.5"),
        (RateView(vr, 1.5), {"target_bpp": 0.2}, "no target"),
    ):
        with pytest.raises(ModelError, match=words):
            c.check(**kwargs)
    vr.check(target_bytes=900, size=(64, 96))
    with pytest.raises(ModelError, match="fixed-rate"):
        RateView(codec, 1.0)
    # The refining codec refines by its own steps; its estimate is of the latents it coded.
    refined = RefinedCodec(codec, 2)
    data = refined.compress(image)
    assert refined.last_refine is codec.last_refine and len(codec.last_refine["history"]) == 2
    r = codec.last_refine
    assert refined.estimate_bpp(image) == codec.estimate_bpp_of_latents(r["y"], r["z"], image.shape[:2])
    assert refined.decompress(data).shape == image.shape
    with pytest.raises(ModelError, match="refines by 2"):
        refined.compress(image, refine_steps=5)


def test_soft_rounding_anneals_to_rounding_and_passes_gradients_across_the_boundary():
    v = jnp.array([0.3, 1.8, -2.2, -0.6], jnp.float32)
    key = jax.random.key(0)
    hard = refine.soft_round(v, key, 0.02)
    np.testing.assert_allclose(hard, np.round(np.asarray(v)), atol=1e-3)
    # Hot: a random mix of the two neighbours, the nearer one weighted more on average.
    draws = jax.vmap(lambda k: refine.soft_round(v, k, 0.5))(jax.random.split(key, 2000))
    assert float(jnp.min(draws - jnp.floor(v))) >= 0 and float(jnp.max(draws - jnp.floor(v))) <= 1
    mean = np.asarray(jnp.mean(draws, axis=0))
    assert np.all(np.abs(mean - np.round(np.asarray(v))) < np.abs(mean - np.asarray(v)) + 0.5)
    assert 0.0 < mean[0] < 0.3 and 1.8 < mean[1] < 2.0
    g = jax.grad(lambda v: jnp.sum(refine.soft_round(v, key, 0.5)))(v)
    assert float(jnp.min(jnp.abs(g))) > 0  # straight-through would give exactly 1 everywhere
    assert not np.allclose(np.asarray(g), 1.0)
    taus = [refine.temperature(i, 10) for i in range(10)]
    assert taus[0] == pytest.approx(0.5) and taus[-1] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(taus, taus[1:]))


def test_progress_callback_and_step_size_schedule(image):
    codec = codec_for("ckbd")
    seen = []
    codec.compress(image, refine_steps=4, progress=lambda i, loss: seen.append((i, loss)))
    assert [i for i, _ in seen] == [1, 2, 3, 4]
    assert [loss for _, loss in seen] == codec.last_refine["history"]
    lrs = [refine.learning_rate(0.01, i, 10) for i in range(11)]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.0005)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


# ------------------------------------------------------------------------- command line


@pytest.fixture
def tiny_zoo(monkeypatch):
    """`jaxlic.zoo.load` returns one tiny random ckbd-full codec (with its lambda)."""
    codec = codec_for("ckbd-full")
    monkeypatch.setattr(zoo, "load", lambda name=None, quality=None, weights=None: codec)
    return codec


def test_cli_compress_refine_writes_a_stream_that_decompresses(tmp_path, image, tiny_zoo, capsys):
    from PIL import Image

    from jaxlic import cli

    Image.fromarray(image).save(tmp_path / "in.png")
    assert cli.main(["compress", str(tmp_path / "in.png"), str(tmp_path / "a.jlic"), "--refine", "3"]) == 0
    out = capsys.readouterr().out
    assert "latents refined by 3 sga steps: RD loss" in out
    r = tiny_zoo.last_refine
    assert f"{r['loss_init']:.4f} -> {r['loss']:.4f}" in out
    assert (
        cli.main(
            [
                "compress",
                str(tmp_path / "in.png"),
                str(tmp_path / "s.jlic"),
                "--refine",
                "2",
                "--refine-method",
                "ste",
            ]
        )
        == 0
    )
    assert "latents refined by 2 ste steps" in capsys.readouterr().out
    assert cli.main(["decompress", str(tmp_path / "a.jlic"), str(tmp_path / "b.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == image.shape
    # A bad step count is a usage error, not a traceback.
    assert cli.main(["compress", str(tmp_path / "in.png"), str(tmp_path / "c.jlic"), "--refine", "-1"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_eval_refine_adds_a_curve_with_its_own_rate_estimate(tmp_path, image, tiny_zoo, capsys):
    import json

    from PIL import Image

    from jaxlic import cli

    (tmp_path / "imgs").mkdir()
    Image.fromarray(image).save(tmp_path / "imgs" / "a.png")
    out = tmp_path / "res"
    assert (
        cli.main(
            ["eval", str(tmp_path / "imgs"), "--weights", "w.msgpack", "--refine", "5", "--out", str(out)]
        )
        == 0
    )
    plain = json.loads((out / "ckbd-full.json").read_text())["results"]
    refined = json.loads((out / "ckbd-full+refine5.json").read_text())["results"]
    loss = lambda r: LMBDA * 255**2 * 10 ** (-r["psnr-rgb"][0] / 10) + r["bpp"][0]
    assert loss(refined) < loss(plain)
    # The estimate is of the refined latents: real / estimated stays near 1 (container overhead).
    assert 1.0 < refined["bpp_real_over_estimated"][0] < 1.5
    from jaxlic.evaluation.rd import RefinedCodec

    assert RefinedCodec(tiny_zoo, 5, "ste").name == "ckbd-full+refine5-ste"
