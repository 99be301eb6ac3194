"""jaxlic.weights: the weight-file format, its float16 (version 2) form, and clear errors."""

import jax
import numpy as np
import pytest

from jaxlic import weights, zoo
from jaxlic.errors import ModelError


def tree(rng):
    return {
        "conv": {"kernel": rng.normal(size=(3, 3, 32, 32)).astype(np.float32), "bias": rng.normal(size=32)},
        "gdn": {"beta": rng.uniform(1e-6, 1e-4, size=32).astype(np.float32)},
    }


def test_half_stores_large_arrays_as_float16_and_loads_float32(tmp_path):
    params = tree(np.random.default_rng(0))
    weights.save(tmp_path / "full.msgpack", params, {"model": "m"})
    weights.save(tmp_path / "half.msgpack", params, {"model": "m"}, half=True)
    full, _ = weights.load(tmp_path / "full.msgpack")
    half, meta = weights.load(tmp_path / "half.msgpack")
    assert meta == {"model": "m"}
    assert (tmp_path / "half.msgpack").stat().st_size < 0.6 * (tmp_path / "full.msgpack").stat().st_size
    assert half["conv"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(half["conv"]["kernel"], params["conv"]["kernel"].astype(np.float16))
    # Small arrays (under HALF_MIN_SIZE elements) stay exact: float16 would flush these to zero.
    np.testing.assert_array_equal(half["gdn"]["beta"], params["gdn"]["beta"])
    np.testing.assert_array_equal(full["conv"]["kernel"], params["conv"]["kernel"])


def test_saved_files_get_plain_permissions_and_overwrite_atomically(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "w.msgpack"
        weights.save(path, {"a": np.zeros(3, np.float32)}, {"model": "m"})
        weights.save(path, {"a": np.ones(3, np.float32)}, {"model": "n"})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any file open() makes
    assert weights.load(path)[1] == {"model": "n"}
    assert [p.name for p in path.parent.iterdir()] == ["w.msgpack"]  # no temporary left


def test_a_compact_codec_decodes_its_own_stream(small_codec, save_codec, tmp_path, monkeypatch):
    from flax import serialization

    monkeypatch.setattr(weights, "HALF_MIN_SIZE", 256)  # the tiny model's kernels count as large
    codec = small_codec("ckbd")
    save_codec(codec, tmp_path / "w.msgpack")
    params, meta = weights.load(tmp_path / "w.msgpack")
    weights.save(tmp_path / "half.msgpack", params, meta, half=True)
    stored = serialization.msgpack_restore((tmp_path / "half.msgpack").read_bytes())["params"]
    assert any(np.asarray(a).dtype == np.float16 for a in jax.tree.leaves(stored))
    half = zoo.load(weights=tmp_path / "half.msgpack")
    img = (np.random.default_rng(1).uniform(size=(32, 48, 3)) * 255).astype(np.uint8)
    out = zoo.load(weights=tmp_path / "half.msgpack").decompress(half.compress(img))
    assert out.shape == img.shape


def test_foreign_and_future_files_are_refused(tmp_path):
    (tmp_path / "junk.msgpack").write_bytes(b"\x00\x01junk")
    with pytest.raises(ModelError, match="not a jaxlic weights file"):
        weights.load(tmp_path / "junk.msgpack")
    from flax import serialization

    blob = {"format": weights.FORMAT, "version": 99, "meta": "{}", "params": {}}
    (tmp_path / "future.msgpack").write_bytes(serialization.msgpack_serialize(blob))
    with pytest.raises(ModelError, match="unsupported weights version 99"):
        weights.load(tmp_path / "future.msgpack")


def test_compact_weights_tool_checks_the_copy_codes_like_the_original(
    vr_codec, save_codec, tmp_path, monkeypatch
):
    import importlib.util
    import json
    import pathlib

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "compact_weights", pathlib.Path(__file__).parents[1] / "tools" / "compact_weights.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(weights, "HALF_MIN_SIZE", 256)  # the tiny model's kernels count as large
    codec = vr_codec()
    save_codec(codec, tmp_path / "w.msgpack")
    (tmp_path / "w.json").write_text(json.dumps({"metrics": {"loss": 1.0}}))
    Image.fromarray((np.random.default_rng(2).uniform(size=(32, 48, 3)) * 255).astype(np.uint8)).save(
        tmp_path / "a.png"
    )
    assert (
        tool.main(
            [str(tmp_path / "w.msgpack"), str(tmp_path / "h.msgpack"), "--check", str(tmp_path / "a.png")]
        )
        == 0
    )
    info = json.loads((tmp_path / "h.json").read_text())
    assert info["stored"] == "float16" and info["metrics"] == {"loss": 1.0}
    rows = info["compact_check"]
    assert [r["rate"] for r in rows] == [0.0, codec.rate_range[1] / 2, codec.rate_range[1]]
    for r in rows:
        assert r["float16"]["bytes"] > 0 and abs(r["d_psnr"]) < 0.5 and abs(r["d_bytes_pct"]) < 10
