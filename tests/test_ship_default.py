"""tools/ship_default.py: a finished run's export becomes the shipped file of its name, exact and
compact, and the file it replaces stays in the archive, where streams written with it find it."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
BITS = (6, 8, 8, 8, 8, 6, 6, 6)


def _tool():
    spec = importlib.util.spec_from_file_location("ship_default", ROOT / "tools" / "ship_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(path: pathlib.Path, seed: int, random_params) -> pathlib.Path:
    """A float run's export of a tiny ckbd, with the JSON beside it as the trainer writes it."""
    from jaxlic import weights
    from jaxlic.models import registry

    model = registry.get_model("ckbd", 3, N=16, M=16)
    meta = {"model": "ckbd", "quality": 3, "config": model.cfg.to_dict(), "metrics": {"step": 10 + seed}}
    path.parent.mkdir(parents=True, exist_ok=True)
    weights.save(path, random_params(model, seed), meta)
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


@pytest.mark.slow
def test_ships_exact_and_compact_and_archives_the_replaced_file(tmp_path, random_params, monkeypatch, capsys):
    from jaxlic import weights, zoo
    from jaxlic.coding import container

    ship = _tool()
    pretrained = tmp_path / "pretrained"
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    common = ["--exact", ",".join(map(str, BITS)), "--pretrained", str(pretrained)]

    # the first file of the name: nothing to archive
    first = _export(tmp_path / "run0" / "export" / "ckbd-q3.msgpack", 0, random_params)
    assert ship.main([str(first), *common]) == 0
    shipped = pretrained / "ckbd-q3.msgpack"
    old = zoo.load(weights=shipped)
    assert old.exact and not (pretrained / "archive").exists()
    stream = old.compress(np.asarray(Image.open(image)))

    # a later run replaces it
    second = _export(tmp_path / "run1" / "export" / "ckbd-q3.msgpack", 1, random_params)
    assert ship.main([str(second), *common, "--check", str(image), "--note", "a better run"]) == 0
    params, meta = weights.load(shipped)
    info = json.loads(shipped.with_suffix(".json").read_text())
    assert meta["config"]["exact"] == list(BITS) and meta["stored"] == "float16" and "z_tables" in meta
    assert info["weights_id"] == f"{weights.fingerprint(params):016x}" != f"{old.weights_id:016x}"
    assert info["metrics"] == {"step": 11} and info["compact_check"]  # the run's record, and the check
    archived = pretrained / "archive" / f"ckbd-q3-{old.weights_id:016x}.msgpack"
    assert weights.fingerprint(weights.load(archived)[0]) == old.weights_id
    assert (
        "replaced by " + info["weights_id"] + " (a better run)"
        in json.loads(archived.with_suffix(".json").read_text())["archived"]
    )
    assert "previous file is kept as" in capsys.readouterr().out

    # the stream written with the replaced file still decodes, as the CLI finds its weights
    monkeypatch.setattr(zoo, "PRETRAINED_DIR", pretrained)
    monkeypatch.setattr(zoo, "ARCHIVE_DIR", pretrained / "archive")
    header, _ = container.unpack(stream)
    codec = zoo.for_stream(header, zoo.load(weights=shipped))
    assert codec.weights_id == old.weights_id
    np.testing.assert_array_equal(codec.decompress(stream), old.decompress(stream))

    # the same weights again: refused, nothing changed
    with pytest.raises(SystemExit, match="already holds these weights"):
        ship.main([str(second), *common])
    assert weights.fingerprint(weights.load(shipped)[0]) == int(info["weights_id"], 16)
    assert {p.name for p in (pretrained / "archive").iterdir()} == {archived.name, archived.stem + ".json"}


def test_a_bad_export_is_a_one_line_error(tmp_path, capsys):
    assert _tool().main([str(tmp_path / "missing.msgpack"), "--pretrained", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights file not found") and err.count("\n") == 1
