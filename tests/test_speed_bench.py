"""eval.speed: codecs timed side by side (warm-up, rotated rounds), ratios within a round."""

import numpy as np

from eval import harness, speed


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
    monkeypatch.setattr(harness, "clock", clock)
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


def _run_main(monkeypatch, tmp_path, *extra):
    import json
    import types

    from PIL import Image

    from jaxlic import zoo
    from jaxlic.latent.schedules import Checkerboard, Serial

    clock, log = _Clock(), []
    monkeypatch.setattr(harness, "clock", clock)
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
    assert speed.main([*argv, "--repeats", "3", "--no-flops", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_main_reports_the_per_round_ratio_with_provenance(monkeypatch, tmp_path, capsys):
    rec = _run_main(monkeypatch, tmp_path)
    assert rec["ratio_serial_over_ckbd_decode"] == 4.0 and rec["interleaved"] and rec["repeats"] == 3
    assert rec["command"].startswith("python -m eval.speed --image") and "CPUs" in rec["machine"]
    assert "median of per-round ratios): 4.00x" in capsys.readouterr().out


def test_main_times_compressai_in_the_same_rounds(monkeypatch, tmp_path, capsys):
    import sys

    script, _ = _fake_server(tmp_path)
    monkeypatch.setattr(speed, "COMPRESSAI_SCRIPT", script)
    rec = _run_main(monkeypatch, tmp_path, "--compressai-python", sys.executable)
    assert rec["compressai_env"] == {"torch": "0.fake"}
    assert rec["compressai_decode_s"] == {"Cheng2020AnchorCheckerboard": 3.0, "Cheng2020Anchor": 12.0}
    # ours decode in 4, 7, 10 s (ckbd) and 16, 28, 40 s (serial) as the load rises; theirs 3 and 12
    assert rec["ratio_compressai_ckbd_over_ours_decode"] == 3.0 / 7.0
    assert rec["ratio_compressai_serial_over_ours_decode"] == 12.0 / 28.0
    assert rec["rounds_decode_s"]["ckbd"] == [[4.0, 7.0, 10.0]]
    out = capsys.readouterr().out
    assert "compressai Cheng2020Anchor: encode 1.000s  decode 12.000s" in out
    assert "CompressAI Cheng2020Anchor decode / our cheng2020-anchor (median of per-round ratios)" in out


_FAKE_SERVER = """
import sys
sys.path.insert(0, {eval_dir!r})
from worker import serve
import compressai_speed  # its real request handlers, with fake models and timings

costs = {{"Cheng2020AnchorCheckerboard": 3.0, "Cheng2020Anchor": 12.0}}
if {die!r}:
    sys.exit("torch is missing")
log = open({log!r}, "a")

def load(path):
    log.write("load\\n")
    log.flush()
    return path

def code(cost, image):
    log.write("round " + str(cost) + "\\n")
    log.flush()
    return {{"encode_s": 1.0, "decode_s": cost, "bytes": 6, "psnr": 31.0}}

serve(compressai_speed.handlers(costs, load, code), sorted(costs), about={{"torch": "0.fake"}})
"""


def _fake_server(tmp_path, die=False):
    script = tmp_path / ("dying.py" if die else "server.py")
    log = tmp_path / "requests.log"
    script.write_text(_FAKE_SERVER.format(eval_dir=str(speed.REPO / "eval"), log=str(log), die=die))
    return script, log


def test_compressai_codecs_take_their_turns_in_the_same_rounds(monkeypatch, tmp_path):
    """The external codecs are coded in the rotated rounds with ours (not in a separate run),
    through eval/compressai_speed.py's real protocol loop, and load each image once."""
    import sys

    clock, log = _Clock(), []
    monkeypatch.setattr(harness, "clock", clock)
    script, requests = _fake_server(tmp_path)
    img = np.zeros((4, 8, 3), np.uint8)
    with speed.ExternalCodecs(sys.executable, speed.COMPRESSAI_MODELS, 128, script=script) as server:
        assert server.models == sorted(speed.COMPRESSAI_MODELS)

        class Logged:  # records when an external codec takes its turn
            def __init__(self, name, codec):
                self.name, self.codec = name, codec

            def time_round(self, img):
                log.append(("dec", self.name))
                return self.codec.time_round(img)

        codecs = {
            "ckbd": _Fake("ckbd", clock, log, 1.0, 1.0),
            "compressai ckbd": Logged("ca-ckbd", server.codec("Cheng2020AnchorCheckerboard")),
            "compressai serial": Logged("ca-serial", server.codec("Cheng2020Anchor")),
        }
        res = speed.time_codecs(codecs, img, repeats=3)
        res2 = speed.time_codecs(codecs, img + 1, repeats=1)
    lines = requests.read_text().split()
    # one load per image; a warm-up plus one request per round for each external codec
    assert lines.count("load") == 2
    assert lines.count("12.0") == 4 + 2 and lines.count("3.0") == 4 + 2
    assert res["compressai serial"]["rounds_decode_s"] == [12.0, 12.0, 12.0]
    assert res["compressai ckbd"]["bpp"] == 8 * 6 / 32 and res["compressai ckbd"]["psnr"] == 31.0
    # a warm-up each, then rounds in rotated order, ours among them
    turns = [n for kind, n in log if kind == "dec"][:12]
    assert turns == ["ckbd", "ca-ckbd", "ca-serial"] + ["ckbd", "ca-ckbd", "ca-serial"] + [
        "ca-ckbd",
        "ca-serial",
        "ckbd",
    ] + ["ca-serial", "ckbd", "ca-ckbd"]
    assert speed.round_ratio([res], "compressai serial", "compressai ckbd") == 4.0
    assert len(res2["ckbd"]["rounds_decode_s"]) == 1


def test_compressai_process_failures_are_one_line_errors(tmp_path):
    import sys

    import pytest

    dying, _ = _fake_server(tmp_path, die=True)
    with pytest.raises(RuntimeError, match=r"process ended \(exit 1\): torch is missing$"):
        speed.ExternalCodecs(sys.executable, speed.COMPRESSAI_MODELS, 128, script=dying).close()
    script, _ = _fake_server(tmp_path)
    with speed.ExternalCodecs(sys.executable, speed.COMPRESSAI_MODELS, 128, script=script) as server:
        with pytest.raises(RuntimeError, match="no image loaded"):
            server.worker.ask("round Cheng2020Anchor")
        img = np.zeros((4, 8, 3), np.uint8)
        with pytest.raises(RuntimeError, match="unknown model 'Nope'"):
            server.time_round("Nope", img)
