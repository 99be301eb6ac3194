"""eval.worker: the JSON-line protocol the benchmarks use to drive CompressAI's interpreter."""

import io
import json
import sys

import pytest

from eval import speed, worker

EVAL_DIR = str(speed.REPO / "eval")


def test_serve_answers_each_request_and_failures_in_one_line():
    out = io.StringIO()
    handlers = {"double": lambda arg: {"twice": 2 * int(arg)}}
    requests = ["double 4\n", "double x\n", "triple 1\n", "quit\n", "double 5\n"]
    worker.serve(handlers, ["m"], about={"torch": "t"}, lines=requests, out=out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers == [
        {"ready": ["m"], "torch": "t"},
        {"twice": 8},
        {"error": "ValueError: invalid literal for int() with base 10: 'x'"},
        {"error": "ValueError: unknown request 'triple 1'"},
    ]  # nothing after quit


_SCRIPT = """
import sys
sys.path.insert(0, {eval_dir!r})
from worker import serve
{before}
serve({{"echo": lambda arg: {{"said": arg}}, "crash": lambda arg: sys.exit("it broke: " + arg)}}, ["x"], {{"v": 1}})
"""


def _worker(tmp_path, before=""):
    script = tmp_path / "w.py"
    script.write_text(_SCRIPT.format(eval_dir=EVAL_DIR, before=before))
    return worker.Worker([sys.executable, str(script)], what="test worker")


def test_worker_round_trip_and_errors(tmp_path):
    with _worker(tmp_path) as w:
        assert w.ready == ["x"] and w.about == {"v": 1}
        assert w.ask("echo hello there") == {"said": "hello there"}
        with pytest.raises(RuntimeError, match=r"^test worker: ValueError: unknown request 'nope'$"):
            w.ask("nope")
        assert w.ask("echo again") == {"said": "again"}  # still serving
        # SystemExit is not an Exception: the worker ends, and says why on stderr
        with pytest.raises(RuntimeError, match=r"^test worker ended \(exit 1\): it broke: now$"):
            w.ask("crash now")
    assert w.proc.returncode == 1


def test_worker_that_fails_to_start_is_one_line(tmp_path):
    with pytest.raises(RuntimeError, match=r"^test worker ended \(exit 1\): no torch here$"):
        _worker(tmp_path, before='sys.exit("no torch here")')


def test_close_ends_the_worker(tmp_path):
    w = _worker(tmp_path)
    w.close()
    assert w.proc.returncode == 0
