"""The benchmark harness: timing, rotated rounds, medians, per-round ratios, provenance, JSON.

Every benchmark in eval/ times with `Timer`, `timed` or `repeat`, runs the variants it compares
in `rotated` rounds (`interleave`), reports `median`s and `median_ratio`s, and writes its record
with a `Run`'s provenance (`write_json`). No other file in eval/ reads a clock, computes a median
or describes the machine (tests/test_eval_harness.py checks that).

Why rotated rounds: on a shared machine the load changes from minute to minute. Timing variant A
for a while and then B charges that change to the difference between them. Instead each round
runs every variant once, in an order rotated by one place each round (no variant always goes
first or always follows the same neighbour), and the ratio of two variants is the median over
rounds of their times *in the same round* (`median_ratio`): a change of the load falls on both
sides of each ratio.

Provenance (`provenance`, `Run`; the code is `jaxlic/provenance.py`, loaded by its path, which
`jaxlic eval` uses too): the command line, the CPU model (/proc/cpuinfo), the core count
and the cores this process may use, the jax, jaxlib, numpy and Python versions, the date, and the
load average when the run started. Its keys include those of
`jaxlic.evaluation.rd.provenance` (``command``, ``machine``, ``jax_backend``, ``python``,
``date``), so a benchmark's record reads like `jaxlic eval`'s.

Standard library only, and nothing imported from the jaxlic package or jax: the scripts that run in
CompressAI's interpreter (eval/*_compressai.py) import it as a plain module (their folder is on
their path), and the child processes of a benchmark import it by path (`CHILD_IMPORT`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence

HERE = pathlib.Path(__file__).resolve().parent

#: A line of Python that makes ``harness`` importable in a child process (``python -c``) started
#: anywhere, even in another checkout: this folder goes last on its path.
CHILD_IMPORT = f"import sys; sys.path.append({str(HERE)!r}); import harness"

#: The wall clock of every timing (seconds, monotonic). Tests replace it with a fake one.
clock = time.perf_counter


def cpu_time(children: bool = False) -> float:
    """CPU seconds (user + system, all threads) of this process, or of its ended child processes."""
    if children:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime
    return time.process_time()


# ------------------------------------------------------------------------------------- timing
class Timer:
    """Wall and CPU seconds from its creation (or `restart`)::

        with Timer() as t:
            work()
        t.seconds, t.cpu_seconds

    or, running: ``t = Timer(); ...; t.elapsed()``. ``children=True`` counts the CPU time of child
    processes that ended meanwhile instead of this process's own.
    """

    def __init__(self, children: bool = False):
        self.children = children
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.restart()

    def restart(self) -> None:
        self._t0, self._c0 = clock(), cpu_time(self.children)

    def elapsed(self) -> float:
        return clock() - self._t0

    def __enter__(self) -> Timer:
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = clock() - self._t0
        self.cpu_seconds = cpu_time(self.children) - self._c0


def timed(fn: Callable, *args, **kwargs) -> tuple:
    """``(fn(*args, **kwargs), wall seconds)``."""
    t0 = clock()
    out = fn(*args, **kwargs)
    return out, clock() - t0


def repeat(fn: Callable[[], object], repeats: int, warmup: int = 0) -> tuple[object, list[float]]:
    """Calls ``fn`` ``warmup`` times untimed, then ``repeats`` times timed: (last result, seconds).

    ``fn`` must finish its work before it returns (e.g. ``block_until_ready`` for JAX arrays).
    """
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        out, seconds = timed(fn)
        times.append(seconds)
    return out, times


# ------------------------------------------------------------------------------------- rounds
def rotated(names: Sequence, r: int) -> list:
    """Round ``r``'s order: ``names`` rotated by ``r``, so that each variant takes each place in turn."""
    names = list(names)
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def interleave(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 0,
    after_round: Callable[[int, dict], None] | None = None,
) -> dict[str, list]:
    """Runs the variants side by side: ``{name: [round 0's result, round 1's, ...]}``.

    Each variant first runs ``warmup`` times in the given order (compiles, caches; not kept), then
    ``rounds`` rounds run every variant once, in `rotated` order. A variant's callable measures
    itself and returns what it measured (seconds, or a dict of them). ``after_round(r, results)``
    sees each round's results by name (to print progress or check outputs).
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    out: dict[str, list] = {n: [] for n in names}
    for r in range(rounds):
        got = {}
        for name in rotated(names, r):
            got[name] = variants[name]()
            out[name].append(got[name])
        if after_round is not None:
            after_round(r, {n: got[n] for n in names})
    return out


# ---------------------------------------------------------------------------------- summaries
def median(values: Iterable[float]) -> float:
    """The median (the mean of the middle two of an even count)."""
    values = list(values)
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def medians(rows: Sequence[dict], keys: Iterable[str]) -> dict[str, float]:
    """Per key, the median over ``rows`` (e.g. the rounds of one variant)."""
    return {k: median(r[k] for r in rows) for k in keys}


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per round, ``numerator[r] / denominator[r]``: both sides measured in the same round."""
    if len(numerator) != len(denominator):
        raise ValueError(f"ratios of {len(numerator)} rounds over {len(denominator)}")
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median over rounds of the per-round ratios (not the ratio of the two medians)."""
    return median(ratios(numerator, denominator))


# --------------------------------------------------------------------------------- provenance
def command(module: str, argv: Sequence[str] | None = None) -> str:
    """``python -m MODULE ARGS``: the command line that repeats this run (``argv``: its arguments,
    default ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", module, *([shlex.join(args)] if args else [])])


def _load_provenance():
    """``jaxlic/provenance.py`` of this checkout, loaded by its path (no jaxlic package needed)."""
    path = HERE.parent / "jaxlic" / "provenance.py"
    spec = importlib.util.spec_from_file_location("_jaxlic_provenance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_provenance = _load_provenance()
cpu_model, versions, load_average = _provenance.cpu_model, _provenance.versions, _provenance.load_average
provenance = _provenance.provenance


class Run:
    """One benchmark run, noted at its start: ``run = Run("eval.speed", argv)`` first thing in
    ``main``, ``run.provenance()`` when the record is written (the load average is the start's)."""

    def __init__(self, module: str, argv: Sequence[str] | None = None):
        self.command = command(module, argv)
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.loadavg_at_start = load_average()

    def provenance(self) -> dict:
        return provenance(self.command, self.loadavg_at_start, self.started)


# --------------------------------------------------------------------------------------- JSON
def _plain(x):
    """JSON for numpy scalars and arrays and tuples (json's ``default``)."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, record: dict, indent: int = 2) -> pathlib.Path:
    """Writes ``record`` to ``path`` (folders made, written whole or not at all)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=indent, default=_plain) + "\n")
    os.replace(tmp, path)
    return path
