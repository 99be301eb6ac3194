"""jaxlic.warm_start: stored executables and parameter shapes, the same streams without tracing."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxlic import warm_start, weights, zoo
from jaxlic.coding import container
from jaxlic.models.codec import Codec
from jaxlic.models.compressor import Compressor

IMG = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
EXACT_SPEC = (6, 8, 8, 8, 8, 6, 6, 6)  # fractional bits of ckbd's exact activation points


@pytest.fixture(scope="module")
def exact_parts(small_codec):
    """(model, variables) of a tiny exact ckbd: the float test codec's weights on the integer path."""
    float_codec = small_codec("ckbd")
    return Compressor(float_codec.cfg.replace(exact=EXACT_SPEC)), float_codec.variables


@pytest.fixture
def store(tmp_path):
    folder = warm_start.enable(tmp_path / "store")
    yield folder
    warm_start.enable(None)


class _Traces:
    """Counts JAX's traces (one per jitted function and argument shapes it has not seen)."""

    count = 0
    on = False

    @classmethod
    def install(cls):
        if not getattr(cls, "_registered", False):

            def listener(event, duration, **_):
                if cls.on and event == "/jax/core/compile/jaxpr_trace_duration":
                    cls.count += 1

            jax.monitoring.register_event_duration_secs_listener(listener)
            cls._registered = True
        cls.count = 0
        return cls


def test_stored_executables_code_the_same_streams_without_tracing(exact_parts, store):
    model, variables = exact_parts
    plain = Codec(model, variables, quality=3)
    assert plain.exact
    data = plain.compress(IMG)
    image = plain.decompress(data)

    before = warm_start.stats()
    first = warm_start.install(Codec(model, variables, quality=3))
    assert first.compress(IMG) == data
    np.testing.assert_array_equal(first.decompress(data), image)
    after = warm_start.stats()
    # analysis, hyper-synthesis, the checkerboard's two parameter passes, synthesis
    assert after["compiled"] - before["compiled"] == after["stored"] - before["stored"] == 5
    assert len(list((store / "executables").glob("*.bin"))) == 5

    # A new codec object has new jitted functions: all it runs must come from the store.
    traces = _Traces.install()
    second = warm_start.install(Codec(model, variables, quality=3))
    traces.on = True
    try:
        assert second.compress(IMG) == data
        np.testing.assert_array_equal(second.decompress(data), image)
    finally:
        traces.on = False
    assert traces.count == 0, "a jitted function of the codec is not covered by the store"
    assert warm_start.stats()["loaded"] - after["loaded"] == 5

    # A damaged entry is compiled again (and rewritten); the others still load.
    ref = next((store / "executables").glob("analysis-*.ref"))
    damaged = store / "executables" / f"{ref.read_text()}.bin"
    damaged.write_bytes(damaged.read_bytes()[:100])
    before = warm_start.stats()
    third = warm_start.install(Codec(model, variables, quality=3))
    assert third.compress(IMG) == data
    np.testing.assert_array_equal(third.decompress(data), image)
    got = {k: warm_start.stats()[k] - before[k] for k in ("lowered", "compiled", "loaded", "stored")}
    assert got == {"lowered": 1, "compiled": 1, "loaded": 4, "stored": 1}


def test_an_edit_that_leaves_the_networks_alone_traces_but_does_not_compile(exact_parts, store, monkeypatch):
    model, variables = exact_parts
    data = warm_start.install(Codec(model, variables, quality=3)).compress(IMG)
    monkeypatch.setattr(warm_start, "code_digest", lambda: "an edited checkout")
    warm_start._environment.cache_clear()
    try:
        before = warm_start.stats()
        assert warm_start.install(Codec(model, variables, quality=3)).compress(IMG) == data
        got = {k: warm_start.stats()[k] - before[k] for k in ("lowered", "compiled", "loaded")}
        assert got == {"lowered": 4, "compiled": 0, "loaded": 4}
        assert len(list((store / "executables").glob("analysis-*.ref"))) == 2
    finally:
        monkeypatch.undo()
        warm_start._environment.cache_clear()


def test_models_whose_parameters_differ_only_where_a_network_does_not_look(exact_parts, store):
    # jit drops unused arguments, so two models that differ only in parameters a network never
    # reads (a z-gain model and its base, for synthesis) lower it to the same module text: the
    # stored executable of one must not be handed to the other, whose parameter tree differs.
    model, variables = exact_parts
    extra = {**variables, "params": {**variables["params"], "unused_gain": np.ones(4, np.float32)}}
    executables = store / "executables"
    base = warm_start.install(Codec(model, variables, quality=3))
    data = base.compress(IMG)
    image = base.decompress(data)
    base_refs = {r.name.split("-")[0]: r for r in executables.glob("*.ref")}
    other = warm_start.install(Codec(model, extra, quality=3))
    theirs = other.compress(IMG)  # the same payload (the header names other weights)
    assert container.unpack(theirs)[1] == container.unpack(data)[1]
    np.testing.assert_array_equal(other.decompress(theirs), image)

    # An entry written by an older jaxlic, whose blob key lacked the tree: the other model's refs
    # name the base model's executables. They are refused and compiled again.
    for ref in set(executables.glob("*.ref")) - set(base_refs.values()):
        base_blob = executables / f"{base_refs[ref.name.split('-')[0]].read_text()}.bin"
        (executables / f"{ref.read_text()}.bin").write_bytes(base_blob.read_bytes())
    again = warm_start.install(Codec(model, extra, quality=3))
    assert again.compress(IMG) == theirs
    np.testing.assert_array_equal(again.decompress(theirs), image)


def test_nothing_changes_without_a_folder(exact_parts):
    model, variables = exact_parts
    warm_start.enable(None)
    codec = warm_start.install(Codec(model, variables, quality=3))
    assert not isinstance(codec._analysis, warm_start.StoredFunction)


def test_environment_variable_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv(warm_start.DISABLE_ENV, "1")
    assert warm_start.enable(tmp_path) is None and warm_start.folder() is None


def test_parameter_shapes_are_stored_and_read_back(exact_parts, store):
    model, _ = exact_parts
    reference = jax.eval_shape(zoo._init_fn(model), zoo._rngs(0))
    calls = []

    def compute():
        calls.append(1)
        return reference

    first = warm_start.cached_shapes(model.cfg, compute)
    second = warm_start.cached_shapes(model.cfg, compute)
    assert len(calls) == 1
    assert jax.tree_util.tree_structure(second) == jax.tree_util.tree_structure(first)
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    weights.check_matches(jax.tree_util.tree_map(lambda s: np.zeros(s.shape), reference), second)
    # Another config has its own entry; a damaged entry is computed again.
    warm_start.cached_shapes(model.cfg.replace(N=16), compute)
    for entry in (store / "shapes").glob("*.json"):
        entry.write_text("{not json")
    warm_start.cached_shapes(model.cfg, compute)
    assert len(calls) == 3


def test_code_digest_follows_the_networks_code_only(tmp_path, monkeypatch):
    package = tmp_path / "jaxlic"
    shutil.copytree(
        pathlib.Path(warm_start.__file__).parent,
        package,
        ignore=shutil.ignore_patterns("pretrained", "*.pyc"),
    )
    monkeypatch.setattr(warm_start, "_PACKAGE", package)

    def digest():
        warm_start.code_digest.cache_clear()
        return warm_start.code_digest()

    try:
        d0 = digest()
        with open(package / "cli.py", "a") as f:
            f.write("\n# a change of the command line\n")
        assert digest() == d0
        with open(package / "models" / "compressor.py", "a") as f:
            f.write("\n# a change of the model\n")
        assert digest() != d0
    finally:
        monkeypatch.undo()
        warm_start.code_digest.cache_clear()


@pytest.mark.slow
def test_a_second_cli_process_loads_every_network(tmp_path, exact_parts):
    from PIL import Image

    model, variables = exact_parts
    codec = Codec(model, variables, quality=3)
    path = tmp_path / "tiny.msgpack"
    meta = {"model": codec.cfg.name, "config": codec.cfg.to_dict(), "quality": codec.quality}
    weights.save(path, codec.variables["params"], meta)
    Image.fromarray(IMG).save(tmp_path / "in.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXLIC_NO_", "XDG_"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def run(*argv):
        cmd = [sys.executable, "-m", "jaxlic.cli", *map(str, argv), "--weights", str(path), "--timings"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        return r.stderr

    run("compress", tmp_path / "in.png", tmp_path / "a.jlic", "--model", "ckbd")
    second = run("compress", tmp_path / "in.png", tmp_path / "b.jlic", "--model", "ckbd")
    decoded = run("decompress", tmp_path / "b.jlic", tmp_path / "b.png")
    assert (tmp_path / "a.jlic").read_bytes() == (tmp_path / "b.jlic").read_bytes()
    # analysis, hyper-synthesis and the two parameter passes; then those three and the synthesis
    # (stored by the decompress call itself, which is the first to synthesise).
    loaded = int(second.split("executables ")[1].split("(")[1].split(")")[0])
    assert loaded == 4, second
    assert int(decoded.split("executables ")[1].split("(")[1].split(")")[0]) == 3, decoded
