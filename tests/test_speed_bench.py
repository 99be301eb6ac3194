"""eval.speed: codecs timed side by side (warm-up, rotated rounds), ratios within a round."""

import numpy as np

from eval import speed


class _Clock:
    def __init__(self):
        self.t, self.load = 0.0, 1.0

    def __call__(self):
        return self.t


class _Fake:
    """A codec whose encode/decode advance a shared fake clock by its cost times the load."""

    def __init__(self, name, clock, log, enc, dec):
        self.name, self.clock, self.log, self.enc, self.dec = name, clock, log, enc, dec
        self.last_timings = {}

    def compress(self, img):
        self.log.append(("enc", self.name))
        self.clock.t += self.enc * self.clock.load
        self.last_timings = {"network_s": 0.5 * self.enc, "coding_s": 0.1}
        return b"x" * 10

    def decompress(self, data):
        self.log.append(("dec", self.name))
        # the machine's load changes from one round (a pair of decodes) to the next
        self.clock.load = 1.0 + 3.0 * ((sum(k == "dec" for k, _ in self.log) - 1) // 2)
        self.clock.t += self.dec * self.clock.load
        self.last_timings = {"network_s": 0.5 * self.dec, "coding_s": 0.2, "synthesis_s": 0.3}
        return np.zeros((4, 8, 3), np.uint8)


def test_warm_up_then_rotated_rounds_and_per_round_ratios(monkeypatch):
    clock, log = _Clock(), []
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    codecs = {"ckbd": _Fake("ckbd", clock, log, 1.0, 1.0), "serial": _Fake("serial", clock, log, 1.0, 4.0)}
    img = np.zeros((4, 8, 3), np.uint8)
    res = speed.time_codecs(codecs, img, repeats=3)
    decodes = [n for kind, n in log if kind == "dec"]
    # one untimed warm-up each, then rounds in rotated order
    assert decodes == ["ckbd", "serial", "ckbd", "serial", "serial", "ckbd", "ckbd", "serial"]
    assert len(res["serial"]["rounds_decode_s"]) == 3
    # the load rises between rounds (1, 4, 7, 10 times), each round's ratio stays 4
    assert res["ckbd"]["rounds_decode_s"] == [4.0, 7.0, 10.0]
    assert speed.round_ratio([res], "serial", "ckbd") == 4.0
    assert res["ckbd"]["bpp"] == 80 / 32 and res["serial"]["decode_coding_s"] == 0.2


def test_rotated_orders():
    assert [speed.rotated(list("abc"), r) for r in range(4)] == [
        list("abc"),
        list("bca"),
        list("cab"),
        list("abc"),
    ]


def test_main_reports_the_per_round_ratio_with_provenance(monkeypatch, tmp_path, capsys):
    import json
    import types

    from PIL import Image

    from jaxlic import zoo
    from jaxlic.latent.schedules import Checkerboard, Serial

    clock, log = _Clock(), []
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    schedules = {"ckbd": (Checkerboard(), 1.0), "cheng2020-anchor": (Serial(), 4.0)}

    def fake_codec(name, quality, N):
        schedule, cost = schedules[name]
        codec = _Fake(name, clock, log, 1.0, cost)
        codec.model = types.SimpleNamespace(latent=types.SimpleNamespace(schedule=schedule))
        return codec

    monkeypatch.setattr(zoo, "random_codec", fake_codec)
    Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(tmp_path / "img.png")
    out = tmp_path / "speed.json"
    argv = ["--image", str(tmp_path / "img.png"), "--models", "ckbd,cheng2020-anchor"]
    assert speed.main([*argv, "--repeats", "3", "--no-flops", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["ratio_serial_over_ckbd_decode"] == 4.0 and rec["interleaved"] and rec["repeats"] == 3
    assert rec["command"].startswith("python -m eval.speed --image") and "CPUs" in rec["machine"]
    assert "median of per-round ratios): 4.00x" in capsys.readouterr().out
