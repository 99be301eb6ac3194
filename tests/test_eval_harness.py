"""eval/harness.py: timing on a fake clock, rotated rounds, medians and per-round ratios, provenance,
JSON; and the guard that no other benchmark script reads a clock, takes a median or describes the
machine itself."""

import ast
import json
import pathlib
import platform
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from eval import harness

ROOT = pathlib.Path(__file__).resolve().parents[1]


class _Clock:
    """A fake clock: each call returns the next of ``ticks``."""

    def __init__(self, *ticks):
        self.ticks = list(ticks)

    def __call__(self):
        return self.ticks.pop(0)


def test_timer_timed_and_repeat_read_the_harness_clock(monkeypatch):
    monkeypatch.setattr(harness, "clock", _Clock(10.0, 12.5))
    monkeypatch.setattr(harness, "cpu_time", lambda children=False: 100.0 if children else 7.0)
    with harness.Timer() as t:
        pass
    assert t.seconds == 2.5 and t.cpu_seconds == 0.0

    monkeypatch.setattr(harness, "clock", _Clock(1.0, 1.25))
    assert harness.timed(lambda a, b=0: a + b, 2, b=3) == (5, 0.25)

    calls = []
    monkeypatch.setattr(harness, "clock", _Clock(0.0, 1.0, 5.0, 7.0))  # two timed calls only
    out, times = harness.repeat(lambda: calls.append(len(calls)) or len(calls), repeats=2, warmup=3)
    assert times == [1.0, 2.0] and out == 5 and calls == [0, 1, 2, 3, 4]

    monkeypatch.setattr(harness, "clock", _Clock(3.0, 4.0, 9.0))
    running = harness.Timer()
    assert running.elapsed() == 1.0 and running.elapsed() == 6.0


def test_rotated_orders_give_each_variant_each_place():
    assert [harness.rotated("abc", r) for r in range(4)] == [
        list("abc"),
        list("bca"),
        list("cab"),
        list("abc"),
    ]
    assert harness.rotated([], 3) == []


def test_interleave_warms_up_untimed_then_rotates_and_reports_each_round():
    log, seen = [], []

    def variant(name):
        def run():
            log.append(name)
            return f"{name}{len(log)}"

        return run

    out = harness.interleave(
        {n: variant(n) for n in "abc"}, rounds=3, warmup=1, after_round=lambda r, got: seen.append((r, got))
    )
    assert log == list("abc") + list("abc") + list("bca") + list("cab")
    assert out == {"a": ["a4", "a9", "a11"], "b": ["b5", "b7", "b12"], "c": ["c6", "c8", "c10"]}
    assert seen[1] == (1, {"a": "a9", "b": "b7", "c": "c8"})  # by name, in the given order
    assert list(seen[1][1]) == list("abc")


def test_medians_and_the_median_of_per_round_ratios():
    # the load triples in the last two rounds: B is always 2x A within a round
    a, b = [1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 6.0, 6.0]
    assert harness.median([3.0, 1.0, 2.0]) == 2.0 and harness.median(a) == 2.0  # even count: the mean
    assert harness.ratios(b, a) == [2.0, 2.0, 2.0, 2.0]
    assert harness.median_ratio(b, a) == 2.0
    # not the ratio of the medians: a load change between rounds does not move it
    a, b = [1.0, 5.0, 9.0], [2.0, 10.0, 4.0]
    assert harness.median_ratio(b, a) == 2.0 and harness.median(b) / harness.median(a) == 0.8
    rows = [{"x": 1.0, "y": 5.0}, {"x": 3.0, "y": 4.0}, {"x": 2.0, "y": 9.0}]
    assert harness.medians(rows, ["x", "y"]) == {"x": 2.0, "y": 5.0}
    with pytest.raises(ValueError, match="3 rounds over 2"):
        harness.ratios([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no values"):
        harness.median([])


def test_provenance_names_the_command_machine_versions_date_and_the_load_at_start(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 1 GHz\nflags\t: sse\n")
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 6)
    loads = iter([[1.5, 1.0, 0.5], [9.0, 9.0, 9.0]])
    monkeypatch.setattr(harness, "load_average", lambda: next(loads))
    run = harness.Run("eval.fake", ["--json", "out dir/r.json", "--n", "3"])
    monkeypatch.delitem(sys.modules, "jax", raising=False)  # a run that never imported jax
    p = harness.provenance(run.command, run.loadavg_at_start, run.started, cpuinfo=str(cpuinfo))
    assert p["command"] == "python -m eval.fake --json 'out dir/r.json' --n 3"
    assert p["cpu"] == "Test CPU 9000 @ 1 GHz" and p["cpus"] == 6
    assert p["machine"] == "Test CPU 9000 @ 1 GHz, 6 CPUs"  # as jaxlic.evaluation.rd.provenance writes it
    assert p["loadavg_at_start"] == [1.5, 1.0, 0.5]  # taken when the run started, not at the end
    assert p["started"] == run.started and p["date"] == run.started[:10]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", p["started"])
    for package in ("jax", "jaxlib", "numpy"):
        assert p[package] == metadata.version(package)
    assert p["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["jax_backend"] is None and p["jax_device"] is None
    assert harness.command("eval.fake", []) == "python -m eval.fake"
    assert harness.cpu_model(str(tmp_path / "missing")) == platform.processor()
    assert harness.versions("no-such-package-here") == {"no-such-package-here": None}


@pytest.mark.parametrize(
    "line, isa",
    [
        ("flags\t: fpu sse2 avx avx2 fma avx512f avx512bw", "AVX-512"),
        ("flags\t: fpu sse2 avx avx2 fma", "AVX2"),
        ("Features\t: fp asimd evtstrm sve", "SVE"),
        ("Features\t: fp asimd", "NEON"),
    ],
)
def test_provenance_names_the_widest_vector_extension(monkeypatch, tmp_path, line, isa):
    """Two VMs of one model name ("AMD EPYC") can dispatch other kernels: the record tells them apart."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\n{line}\n")
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)
    p = harness.provenance("x", cpuinfo=str(cpuinfo))
    assert p["isa"] == isa and p["machine"] == f"AMD EPYC ({isa}), 2 CPUs"
    assert harness.provenance("x", cpuinfo=str(tmp_path / "missing"))["isa"] == ""


def test_provenance_has_the_keys_of_the_products_record():
    """A benchmark's record reads like `jaxlic eval`'s summary."""
    import jax  # noqa: F401  (both fill jax_backend)

    from jaxlic.evaluation.rd import provenance

    ours, theirs = harness.provenance("x"), provenance("x")
    assert set(theirs) <= set(ours)
    assert ours["machine"] == theirs["machine"] and ours["jax_backend"] == theirs["jax_backend"]


def test_write_json_makes_folders_and_writes_numpy_values(tmp_path):
    path = tmp_path / "a" / "b" / "r.json"
    harness.write_json(path, {"x": np.float32(0.5), "n": np.int64(3), "v": np.arange(3), "t": (1, 2)})
    assert json.loads(path.read_text()) == {"x": 0.5, "n": 3, "v": [0, 1, 2], "t": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left
    with pytest.raises(TypeError, match="object is not JSON"):
        harness.write_json(path, {"x": object()})
    assert json.loads(path.read_text())["n"] == 3  # a failed write leaves the old record whole


def test_a_child_process_started_elsewhere_imports_the_harness(tmp_path):
    code = harness.CHILD_IMPORT + "\nprint(harness.median([3, 1, 2]), harness.rotated('ab', 1))"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["2", "['b',", "'a']"]


# ------------------------------------------------------------------------------------- guard
#: What only the harness may do: read a clock, take a median, describe the machine. Matched in the
#: source text, so the code of child processes (in strings) is covered too.
FORBIDDEN = {
    "a clock": r"\bperf_counter\b|\bprocess_time\b|\bmonotonic\b|\btime\.time\(|\bru_[us]time\b",
    "a median": (
        r"^\s*import [^\n]*\bstatistics\b|^\s*from statistics\b|\bstatistics\."
        r"|\b(?:np|numpy|jnp)\.(?:nan)?(?:median|percentile|quantile)\b"
    ),
    "provenance": (
        r"^\s*import [^\n]*\bplatform\b|^\s*from platform\b|\bplatform\.\w+\(|cpuinfo|\bgetloadavg\b"
        r"|\bsched_getaffinity\b|\.__version__\b|\bstrftime\b|rd import provenance|\brd\.provenance\b"
    ),
}


def offences(source: str) -> list[str]:
    """What in ``source`` belongs in the harness: the FORBIDDEN patterns, and hand-made medians
    (the element of a ``sorted(...)`` list at a halved index)."""
    found = [
        f"{what}: {m.group(0)!r}" for what, rx in FORBIDDEN.items() for m in re.finditer(rx, source, re.M)
    ]
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "sorted"
            and any(isinstance(n, ast.FloorDiv) for n in ast.walk(node.slice))
        ):
            found.append(f"a median: {ast.unparse(node)!r}")
    return found


def _scripts() -> list[pathlib.Path]:
    """Every benchmark script but the harness, and the scripts of finished studies in results/."""
    files = [p for p in sorted((ROOT / "eval").glob("*.py")) if p.name != "harness.py"]
    return files + sorted((ROOT / "results").glob("*/*.py"))


def test_the_guard_sees_what_it_guards():
    names = {p.relative_to(ROOT).as_posix() for p in _scripts()}
    assert {"eval/speed.py", "eval/cold_start.py", "results/vr_cost/vr_cost.py"} <= names
    assert "eval/harness.py" not in names
    bad = (
        "import time, statistics\nt0 = time.perf_counter()\nm = statistics.median(x)\nq = np.median(x)\n"
        "s = sorted(times)[len(times) // 2]\nimport platform\n"
        'CHILD = "import json; print(platform.node())"\nload = os.getloadavg()\nv = jax.__version__\n'
    )
    found = offences(bad)
    assert found == [
        "a clock: 'perf_counter'",
        "a median: 'import time, statistics'",
        "a median: 'statistics.'",
        "a median: 'np.median'",
        "provenance: 'import platform'",
        "provenance: 'platform.node('",
        "provenance: 'getloadavg'",
        "provenance: '.__version__'",
        "a median: 'sorted(times)[len(times) // 2]'",
    ]
    fine = "from eval import harness\nt = harness.median(times)\ns = sorted(x)[-1]\nprint('median')\n"
    assert offences(fine) == []


@pytest.mark.parametrize("path", _scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_benchmark_times_takes_medians_or_describes_the_machine_outside_the_harness(path):
    assert offences(path.read_text()) == []
