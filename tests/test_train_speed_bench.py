"""eval.train_speed: jaxlic's and CompressAI's steps side by side (rotated rounds, per-round ratio)."""

import json
import sys

from eval import train_speed

_FAKE_COMPRESSAI = """
import sys
sys.path.insert(0, {eval_dir!r})
from worker import serve

LOG = {log!r}

def steps(k):
    with open(LOG) as f:
        load = len(f.read().split()) // 2 + 1  # the round's load, shared with the jaxlic side
    with open(LOG, "a") as f:
        f.write("compressai\\n")
    return {{"times": [2.0 * load] * int(k)}}

serve({{"steps": steps}}, ["cheng2020-anchor"], {{"device": "cpu", "torch": "0.fake"}})
"""


def test_rotated_rounds_and_the_per_round_ratio(monkeypatch, tmp_path, capsys):
    log = tmp_path / "turns.log"
    log.write_text("")
    (tmp_path / "train_speed_compressai.py").write_text(
        _FAKE_COMPRESSAI.format(eval_dir=str(train_speed.HERE), log=str(log))
    )
    monkeypatch.setattr(train_speed, "HERE", tmp_path)

    class FakeJaxlic:
        device, warmup_s = "fake", 0.0

        def __init__(self, args):
            pass

        def time_steps(self, n):
            load = len(log.read_text().split()) // 2 + 1
            log.write_text(log.read_text() + "jaxlic\n")
            return [{1: 5.0, 2: 1.0, 3: 3.0}[load] + 0.1 * i for i in range(n)]

    monkeypatch.setattr(train_speed, "JaxlicStep", FakeJaxlic)
    out = tmp_path / "r.json"
    argv = ["--json", str(out), "--compressai-python", sys.executable, "--rounds", "3", "--steps", "3"]
    train_speed.main(argv)
    # each framework takes each place in turn
    assert log.read_text().split() == ["jaxlic", "compressai", "compressai", "jaxlic", "jaxlic", "compressai"]
    rec = json.loads(out.read_text())
    assert rec["round_medians"] == {"jaxlic": [5.1, 1.1, 3.1], "compressai": [2.0, 4.0, 6.0]}
    # the median of 2/5.1, 4/1.1, 6/3.1, not the ratio of the pooled medians (4.0 / 3.1)
    assert rec["ratio_compressai_over_jaxlic"] == 6.0 / 3.1
    assert rec["compressai_step_s"] == 4.0 and rec["jaxlic_step_s"] == 3.1
    assert rec["compressai_env"] == {"device": "cpu", "torch": "0.fake"}
    assert rec["command"].startswith("python -m eval.train_speed --json") and "CPUs" in rec["machine"]
    assert "median of per-round ratios" in capsys.readouterr().out


def test_without_compressai(monkeypatch, tmp_path):
    class FakeJaxlic:
        device, warmup_s = "fake", 0.0

        def __init__(self, args):
            pass

        def time_steps(self, n):
            return [0.5] * n

    monkeypatch.setattr(train_speed, "JaxlicStep", FakeJaxlic)
    rec = train_speed.main(["--json", str(tmp_path / "r.json"), "--rounds", "2"])
    assert rec["jaxlic_step_s"] == 0.5 and rec["ratio_compressai_over_jaxlic"] is None
