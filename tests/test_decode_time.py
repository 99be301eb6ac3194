"""eval.decode_time: interleaved, rotated rounds, checked decodes, ratios to the first file."""

import json

import numpy as np
import pytest
from PIL import Image

from eval import decode_time
from jaxlic.errors import JaxlicError


class _Fake:
    """A codec whose decode logs its name and returns ``images`` in turn."""

    def __init__(self, name, log, images):
        self.name, self.log, self.images = name, log, list(images)
        self.last_timings = {}

    def decompress(self, data):
        self.log.append(self.name)
        self.last_timings = {"network_s": 0.2, "coding_s": 0.1, "synthesis_s": 0.15}
        return self.images.pop(0) if len(self.images) > 1 else self.images[0]


def test_rounds_rotate_and_a_changed_decode_is_an_error():
    log, same = [], [np.zeros((2, 2, 3), np.uint8)]
    codecs = {n: _Fake(n, log, same) for n in "abc"}
    streams = {n: {"stream": b"", "image": same[0], "bpp": 0.1, "psnr": 30.0} for n in "abc"}
    times = decode_time.interleaved(codecs, streams, rounds=3)
    assert log == list("abcbcacab")
    rows = decode_time.summarize(times, streams)
    assert rows["a"]["ratio_over_a"] == 1.0 and len(rows["c"]["times"]) == 3
    assert rows["b"]["synthesis_s_median"] == 0.15
    codecs["b"] = _Fake("b", log, [same[0], np.ones((2, 2, 3), np.uint8)])
    with pytest.raises(JaxlicError, match="b: decoding round 1 gave another image"):
        decode_time.interleaved(codecs, streams, rounds=2)


def test_two_weights_files_side_by_side(tmp_path, vr_codec, small_codec, save_codec, capsys):
    save_codec(vr_codec("ckbd-vr"), tmp_path / "vr.msgpack")
    save_codec(small_codec("ckbd"), tmp_path / "fixed.msgpack")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    out = tmp_path / "t.json"
    args = ["--weights", f"vr={tmp_path / 'vr.msgpack'}", "--weights", f"fixed={tmp_path / 'fixed.msgpack'}"]
    assert (
        decode_time.main([*args, "--image", str(tmp_path / "img.png"), "--rounds", "2", "--json", str(out)])
        == 0
    )
    rec = json.loads(out.read_text())
    assert list(rec["results"]) == ["vr", "fixed"] and rec["rounds"] == 2
    assert rec["command"].startswith("python -m eval.decode_time --weights") and "CPUs" in rec["machine"]
    assert rec["results"]["vr"]["ratio_over_vr"] == 1.0
    for r in rec["results"].values():
        assert len(r["times"]) == 2 and r["decode_s_min"] <= r["decode_s"] <= r["decode_s_max"]
        assert r["bpp"] > 0 and r["network_s_median"] >= r["synthesis_s_median"] > 0
    assert "fixed:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "nopath"], "NAME=PATH"),
        (["--weights", "a=x", "--image", "/nonexistent.png"], "no image at"),
    ],
)
def test_errors_are_one_line(args, message, capsys):
    assert decode_time.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
