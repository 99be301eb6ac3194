"""Fixtures shared by the test modules (test modules never import each other)."""

import atexit
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

# The CLI turns on JAX's persistent compilation cache under ~/.cache (jaxlic.compile_cache). Tests
# run the CLI in-process and in subprocesses and must not write there; tests/test_compile_cache.py
# turns the cache on in its own subprocesses, with a temporary folder.
os.environ.setdefault("JAXLIC_NO_COMPILE_CACHE", "1")
# A resident server (jaxlic.server) that a developer left running must not serve the tests' CLI
# calls; tests/test_server.py starts its own, in a folder of its own.
os.environ["JAXLIC_SERVER"] = "0"


def pytest_configure(config):
    """One persistent XLA compilation cache for the whole test session.

    Compiling dominates the suite's time, and many tests compile the same tiny models: in
    xdist workers and in the subprocesses of fresh-process, CLI and training tests. JAX reads
    these variables in every process (the controller sets them before the workers start, and
    subprocesses inherit them); a hit returns the executable the same flags would compile, so
    no test sees different numbers. Tests of other XLA configurations or of the cache itself
    remove the variables from their subprocesses' environment. Set JAXLIC_TEST_NO_XLA_CACHE=1
    to run without it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    # Compiling tiny models dominates; LLVM's -O1 compiles them about a third faster. Tests compare
    # values within this configuration; tests/test_cross_implementation.py decodes under others.
    if os.environ.get("JAXLIC_TEST_XLA_O1", "1") == "1" and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=1"
    if os.environ.get("JAXLIC_TEST_NO_XLA_CACHE"):
        return
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="jaxlic-test-xla-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def write_images_to(folder: pathlib.Path, n: int = 6, size=(80, 72)) -> list[pathlib.Path]:
    """Flat-colour images whose red channel (40 * i + 10) identifies the file i."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.zeros(size + (3,), np.uint8)
        img[..., 0] = 40 * i + 10
        img[..., 1] = np.arange(size[1], dtype=np.uint8)[None, :] * 3  # makes flips visible
        sub = folder / ("a" if i % 2 else "b")  # recursive search
        sub.mkdir(exist_ok=True)
        path = sub / (f"{i}.png" if i % 3 else f"{i}.jpg")
        Image.fromarray(img).save(path, quality=100)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def write_images():
    """``write_images(folder, n=6, size=(80, 72))``: flat-colour PNG/JPEG files in two subfolders;
    the red channel of file i is ``40 * i + 10``."""
    return write_images_to


def small_codec_of(name: str, seed: int = 0):
    """A tiny random codec of a registered model: N=8 (and M=12 for Ballé's transforms)."""
    from jaxlic import models, zoo

    over = dict(N=8) if models.get_config(name).transform == "cheng" else dict(N=8, M=12)
    return zoo.random_codec(name, quality=3, seed=seed, **over)


def save_codec_to(codec, path) -> None:
    """Writes a codec's weights with the metadata `jaxlic.zoo.load(weights=path)` reads."""
    from jaxlic import weights

    meta = {"model": codec.cfg.name, "config": codec.cfg.to_dict(), "quality": codec.quality}
    weights.save(path, codec.variables["params"], meta)


def random_params_of(model, seed: int) -> dict:
    """Random parameters of `model` as numpy arrays, drawn without an initialisation run.

    Kernels N(0, 1.5^2 / fan_in), so that activations neither die nor explode through the exact
    path's integer networks; biases N(0, 0.3^2); other leaves 0.1 + 0.1 |N(0, 1)|; the factorized
    prior as initialised (quantiles at +-8 around random medians).
    """
    import math

    import jax

    from jaxlic import zoo

    rng = np.random.default_rng(seed)
    shapes = zoo.variable_shapes(model)["params"]

    def leaf(path, sd):
        name = path[-1].key
        if name == "kernel":
            return rng.normal(0, 1.5 / math.sqrt(math.prod(sd.shape[:-1])), sd.shape).astype(np.float32)
        if name == "bias":
            return rng.normal(0, 0.3, sd.shape).astype(np.float32)
        return (0.1 + 0.1 * np.abs(rng.normal(size=sd.shape))).astype(np.float32)

    params = jax.tree_util.tree_map_with_path(
        leaf, {k: v for k, v in shapes.items() if k != "entropy_bottleneck"}
    )
    channels = shapes["entropy_bottleneck"]["quantiles"].shape[0]
    eb, filters, scale = {}, (1, 3, 3, 3, 3, 1), 10.0 ** (1 / 5)
    for i in range(5):
        shape = (channels, filters[i + 1], filters[i])
        eb[f"matrix{i}"] = np.full(shape, np.log(np.expm1(1 / scale / filters[i + 1])), np.float32)
        eb[f"bias{i}"] = rng.uniform(-0.5, 0.5, (channels, filters[i + 1], 1)).astype(np.float32)
        if i < 4:
            eb[f"factor{i}"] = np.zeros((channels, filters[i + 1], 1), np.float32)
    med = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
    eb["quantiles"] = np.stack([med - 8, med, med + 8], -1)[:, None, :].astype(np.float32)
    for k, v in shapes["entropy_bottleneck"].items():
        assert eb[k].shape == v.shape, k
    return {**params, "entropy_bottleneck": eb}


def vr_codec_of(name: str = "ckbd-vr", seed: int = 0):
    """A tiny random variable-rate codec whose gains grow with the rate parameter.

    Random-init transforms make latents that round to zero; gains from 1 to e^6 (distinct per
    channel and per point, inverse gains their reciprocals) make them non-trivial and make the
    rate grow with q.
    """
    import jax
    import jax.numpy as jnp

    from jaxlic.models import registry
    from jaxlic.models.codec import Codec

    model = registry.get_model(name, 3, N=8)  # not through jaxlic.zoo: test_cli replaces it
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    rngs = {"params": jax.random.key(seed), "noise": jax.random.key(seed + 1)}
    codec = Codec(model, model.init(rngs, x, 0.0, method="forward_train"), quality=3)
    R, M = codec.num_rates, codec.cfg.M
    log_gain = np.linspace(0.0, 6.0, R)[:, None] + np.linspace(0.0, 0.5, M)[None, :]
    params = dict(
        codec.variables["params"],
        gain={"log_gain": jnp.asarray(log_gain, jnp.float32)},
        inv_gain={"log_gain": jnp.asarray(-0.9 * log_gain, jnp.float32)},
    )
    return Codec(codec.model, {"params": params}, quality=3)


@pytest.fixture(scope="session")
def vr_codec():
    """``vr_codec(name="ckbd-vr", seed=0)``: a tiny random variable-rate codec whose rate grows
    with the rate parameter."""
    return vr_codec_of


@pytest.fixture(scope="session")
def small_codec():
    """``small_codec(name, seed=0)``: a tiny random codec of a registered model."""
    return small_codec_of


@pytest.fixture(scope="session")
def random_params():
    """``random_params(model, seed)``: random numpy parameters of a model (no initialisation run)."""
    return random_params_of


@pytest.fixture(scope="session")
def save_codec():
    """``save_codec(codec, path)``: its weights and metadata, loadable by ``zoo.load(weights=path)``."""
    return save_codec_to
