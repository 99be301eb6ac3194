"""Variable-rate models (gain units, Cui et al. 2021): one model, a continuum of rates, real streams."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import zoo
from jaxlic.coding import container
from jaxlic.errors import BitstreamError, ModelError
from jaxlic.metrics import psnr
from jaxlic.models import registry
from jaxlic.models.codec import rate_from_extra

Q = 1.37  # an interpolated rate parameter (between trained points 1 and 2)
TOP = float(len(registry.VR_LAMBDAS) - 1)  # the highest rate parameter


@pytest.fixture(scope="module")
def codec(vr_codec):
    return vr_codec()


@pytest.fixture(scope="module")
def image():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 200:296])  # 64 x 96 real photo crop


def test_registry_variants():
    vr = [n for n in registry.list_models(variable_rate=True) if n.endswith("-vr")]
    assert vr == ["ckbd-vr", "ckbd-attn-vr", "ckbd-gmm-vr", "ckbd-pp-vr", "ckbd-full-vr"]
    assert not any(n.endswith("-vr") for n in registry.list_models())
    assert registry.is_variable_rate("ckbd-full-vr") and not registry.is_variable_rate("ckbd-full")
    cfg = registry.get_config("ckbd-full-vr")
    assert cfg.num_rates == len(registry.VR_LAMBDAS) == 8
    assert cfg.to_dict()["num_rates"] == 8
    assert registry.VR_LAMBDAS[0] == 1e-4 and registry.VR_LAMBDAS[-1] == 0.0483
    assert np.all(np.diff(np.log(registry.VR_LAMBDAS)) > 0)


def test_default_rate_is_the_point_nearest_lambda_0_0035():
    assert registry.default_rate(registry.VR_LAMBDAS) == 4  # lambda 0.00342
    assert registry.default_rate([0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]) == 1  # CompressAI q1..q6
    assert registry.default_rate([0.01]) == 0


def test_fixed_rate_models_unchanged():
    cfg = registry.get_config("ckbd-full")
    assert cfg.num_rates == 0 and "num_rates" not in cfg.to_dict()
    model = registry.get_model("ckbd", N=8)
    params = zoo.variable_shapes(model)["params"]
    assert "gain" not in params and "inv_gain" not in params


def test_default_model_is_the_shipped_variable_rate_one(image):
    assert zoo.available()[registry.DEFAULT_MODEL] == [0]
    codec = zoo.load()
    assert codec.name == registry.DEFAULT_MODEL and codec.variable_rate
    lambdas = codec.meta["lambdas"]
    assert codec.rate_range == (0.0, len(lambdas) - 1.0)
    assert abs(np.log(lambdas[int(codec.default_rate)] / registry.VR_DEFAULT_LAMBDA)) < 0.1
    sizes = [len(codec.compress(image, quality=q)) for q in codec.rate_range]
    default = codec.compress(image)
    assert sizes[0] < len(default) < sizes[1]
    assert codec.decompress(default).shape == image.shape


STREAMS = pathlib.Path(__file__).parent / "fixtures" / "streams"
SHIPPED_STREAM = STREAMS / "ckbd-full-q2-astronaut-exact.jlic"


def test_shipped_stream_unchanged():
    """An exact stream the shipped fixed-rate ckbd-full q2 wrote of scikit-image's astronaut
    (tests/fixtures/streams, recorded in GOLDEN.json by tools/make_golden_streams.py) still
    decodes to the very symbols it was written with, and to its image (PSNR within 0.05 dB: the
    synthesis is float); and coding the image now gives a stream of about that size and quality.
    Not a digest of a fresh encoding: the analysis is float, so its rounding of a few latents
    moves with the machine and the installed libraries (a digest pinned earlier failed on
    2026-12-03 in a fresh install, jax 0.10.2 and numpy 2.4.6, with jaxlic unchanged)."""
    from skimage import data

    from eval.portability import captured_symbols, symbol_digest

    golden = json.loads((STREAMS / "GOLDEN.json").read_text())
    entry = next(s for s in golden["streams"] if s["file"] == SHIPPED_STREAM.name)
    img = data.astronaut()
    old = SHIPPED_STREAM.read_bytes()
    assert len(old) == entry["bytes"]
    codec = zoo.load("ckbd-full", 2)
    assert codec.exact
    decoder = zoo.for_stream(container.unpack(old)[0], codec)  # the weights it names
    with captured_symbols() as seen:
        out = decoder.decompress(old)  # raises BitstreamError if the symbol check fails
    assert symbol_digest(seen[-1]) == entry["symbol_digest"]
    assert abs(psnr(img, out) - entry["psnr"]) < 0.05
    new = codec.compress(img)
    assert abs(len(new) / len(old) - 1) < 0.01
    assert abs(psnr(img, codec.decompress(new)) - entry["psnr"]) < 0.02


def test_model_needs_rate_and_takes_one_per_example():
    model = registry.get_model("ckbd-vr", N=8)
    v = zoo.init_variables(model)
    assert v["params"]["gain"]["log_gain"].shape == (len(registry.VR_LAMBDAS), 8)
    x = jnp.zeros((2, 64, 64, 3))
    with pytest.raises(ValueError, match="variable-rate"):
        model.apply(v, x, method="forward_eval")
    out = model.apply(v, x, jnp.array([0, 5]), method="forward_train", rngs={"noise": jax.random.key(0)})
    assert out["x_hat"].shape == x.shape


def test_rate_grows_with_q(codec, image):
    sizes = [len(codec.compress(image, quality=q)) for q in (0.0, 1.0, Q, 2.0, 3.0, 4.0, 5.0, TOP)]
    assert sizes == sorted(sizes) and sizes[-1] > 2 * sizes[0], sizes


def test_header_round_trip_of_q(codec, image):
    data = codec.compress(image, quality=Q)
    header, _ = container.unpack(data)
    assert rate_from_extra(header.extra["rate"]) == np.float32(Q)
    assert codec.last_rate == float(np.float32(Q))
    codec.decompress(data)
    assert codec.last_rate == float(np.float32(Q))
    default = codec.compress(image)  # the default rate parameter: the point nearest lambda 0.0035
    assert rate_from_extra(container.unpack(default)[0].extra["rate"]) == np.float32(codec.default_rate)


def test_fresh_process_decode_bit_exact(codec, image, tmp_path):
    data = codec.compress(image, quality=Q)
    expected = codec.decompress(data)
    assert expected.std() > 0
    (tmp_path / "s.jlic").write_bytes(data)
    script = f"""
import sys
import numpy as np
sys.path.insert(0, {json.dumps(str(pathlib.Path(__file__).parent))})
from conftest import vr_codec_of
tmp = {json.dumps(str(tmp_path))}
np.save(f"{{tmp}}/out.npy", vr_codec_of().decompress(open(f"{{tmp}}/s.jlic", "rb").read()))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
    assert np.load(tmp_path / "out.npy").tobytes() == expected.tobytes()


def test_target_size_search(codec, image):
    lo, hi = len(codec.compress(image, quality=0.0)), len(codec.compress(image, quality=TOP))
    target = (lo * hi) ** 0.5
    data = codec.compress(image, target_bytes=target)
    assert abs(len(data) - target) <= 0.03 * target
    assert codec.last_rate_search.within_tolerance and not codec.last_rate_search.note
    assert codec.decompress(data).shape == image.shape
    bpp = 8 * target / (image.shape[0] * image.shape[1])
    assert abs(len(codec.compress(image, target_bpp=bpp)) - target) <= 0.03 * target
    small = codec.compress(image, target_bytes=lo / 2)  # out of reach: the smallest stream
    assert len(small) == lo and "smallest" in codec.last_rate_search.note
    big = codec.compress(image, target_bytes=hi * 10)
    assert len(big) == hi and "largest" in codec.last_rate_search.note


@pytest.mark.parametrize("q", [float("nan"), -0.5, TOP + 0.01, "x", float("inf")])
def test_bad_rate_refused(codec, image, q):
    with pytest.raises(ModelError):
        codec.compress(image, quality=q)


def test_bad_arguments_refused(codec, image):
    with pytest.raises(ModelError, match="at most one"):
        codec.compress(image, quality=1.0, target_bytes=100)
    with pytest.raises(ModelError, match="positive"):
        codec.compress(image, target_bpp=-1.0)
    fixed = zoo.random_codec("ckbd", quality=3, N=8)
    with pytest.raises(ModelError, match="fixed-rate"):
        fixed.compress(image, quality=1.0)


def test_streams_without_or_with_foreign_rate_refused(codec, image):
    data = codec.compress(image, quality=Q)
    header, sections = container.unpack(data)
    assert "rate" in header.extra

    def with_extra(extra):
        return container.pack(dataclasses.replace(header, extra=extra), sections)

    without_rate = {k: v for k, v in header.extra.items() if k != "rate"}
    with pytest.raises(BitstreamError, match="no rate"):
        codec.decompress(with_extra(without_rate))
    with pytest.raises(BitstreamError, match="rate"):
        codec.decompress(with_extra({**header.extra, "rate": 2**40}))
    fixed = zoo.random_codec("ckbd", quality=3, N=8)
    # A rate in a fixed-rate model's stream (its own weights, so that the rate is what is wrong).
    own = {**header.extra, container.WEIGHTS_KEY: fixed.weights_id}
    foreign = container.pack(dataclasses.replace(header, model="ckbd", quality=3, extra=own), sections)
    with pytest.raises(BitstreamError, match="fixed-rate"):
        fixed.decompress(foreign)


def test_rate_view(codec, image):
    view = codec.at_rate(2.5)
    assert view.rate == 2.5 and view.rate_range == (2.5, 2.5) and view.name == "ckbd-vr"
    data = view.compress(image)
    assert rate_from_extra(container.unpack(data)[0].extra["rate"]) == np.float32(2.5)
    assert view.estimate_bpp(image) > 0


def test_eval_draws_a_whole_curve_from_one_variable_rate_model(codec, tmp_path, capsys):
    from PIL import Image

    from jaxlic import cli, weights

    images = tmp_path / "imgs"
    images.mkdir()
    from skimage import data

    Image.fromarray(data.astronaut()[100:164, 200:296]).save(images / "a.png")
    path = tmp_path / "vr.msgpack"
    weights.save(
        path, codec.variables["params"], {"model": "ckbd-vr", "config": codec.cfg.to_dict(), "quality": 3}
    )
    code = cli.main(["eval", str(images), "--weights", str(path), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    rows = (tmp_path / "out" / "per_image_ckbd-vr.csv").read_text().strip().splitlines()[1:]
    qualities = [float(r.split(",")[3]) for r in rows]
    assert len(qualities) == 8 and qualities == sorted(qualities) and len(set(qualities)) == 8
    bpps = [float(r.split(",")[7]) for r in rows]
    assert bpps == sorted(bpps)  # the rate grows along the curve
