"""Many files in one ``jaxlic compress`` / ``decompress`` call: inputs, output names, progress.

One process codes the whole list with one codec object, so the weights are read once and each
network is compiled (or loaded, :mod:`jaxlic.warm_start`) once per padded image size; the start-up
that a call per file pays every time is paid once. This module holds what does not depend on the
codec (it imports no JAX):

* :func:`expand` turns the command line's inputs (files, folders, glob patterns) into files;
* :func:`output_path` names each output in ``--out-dir``: ``photo.png`` -> ``photo.png.jlic``,
  ``photo.png.jlic`` -> ``photo.png`` (another image extension, or none, becomes ``.png``);
* :class:`Progress` reports: a progress bar with an ETA on a terminal (tqdm, on stderr), one line
  per file otherwise (stdout, for logs and pipes); a failed file is one ``jaxlic: error:`` line on
  stderr and the others go on; :meth:`Progress.summary` ends the call;
* :class:`Timings`: where the time of a call went (``--timings``).
"""

from __future__ import annotations

import glob
import os
import sys
import time
from dataclasses import dataclass, field

STREAM_EXTENSION = ".jlic"
_GLOB_CHARS = frozenset("*?[")


@dataclass
class Inputs:
    """The files of a batch, in order, and the inputs that named none (``(input, message)``)."""

    files: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)


def _in_folder(folder: str, extensions: tuple[str, ...]) -> list[str]:
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(extensions)
        and not f.startswith(".")
        and os.path.isfile(os.path.join(folder, f))
    )


def expand(specs: list[str], extensions: tuple[str, ...]) -> Inputs:
    """Files named by command-line inputs.

    Args:
      specs: files (taken whatever their extension), folders (the files directly inside with one
        of ``extensions``, sorted by name; hidden files left out) and glob patterns (quoted so
        that the shell leaves them alone: the matching files, sorted).
      extensions: lower-case file extensions a folder contributes, e.g. ``(".png", ".jpg")``.

    Returns:
      :class:`Inputs`; a file reached twice is listed once. A missing file, an empty folder or a
      pattern that matches nothing is in ``bad``.
    """
    out, seen = Inputs(), set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.files.append(path)

    for spec in specs:
        if os.path.isdir(spec):
            found = _in_folder(spec, extensions)
            if not found:
                out.bad.append(
                    (spec, f"no {'/'.join(e.lstrip('.') for e in extensions)} files in this folder")
                )
            for path in found:
                add(path)
        elif os.path.lexists(spec) or not _GLOB_CHARS & set(spec):
            if not os.path.exists(spec):
                out.bad.append((spec, "no such file"))
            else:
                add(spec)
        else:
            matches = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not matches:
                out.bad.append((spec, "no files match this pattern"))
            for path in matches:
                add(path)
    return out


def output_path(path: str, out_dir: str, command: str) -> str:
    """The output of ``path`` in ``out_dir``: compress appends ``.jlic`` to the file name;
    decompress drops it and writes ``.png`` (``a.png.jlic`` -> ``a.png``, ``a.jpg.jlic`` ->
    ``a.png``, ``a.jlic`` -> ``a.png``)."""
    name = os.path.basename(path)
    if command == "compress":
        return os.path.join(out_dir, name + STREAM_EXTENSION)
    if name.lower().endswith(STREAM_EXTENSION):
        name = name[: -len(STREAM_EXTENSION)]
    from jaxlic.image_io import IMAGE_EXTENSIONS

    stem, ext = os.path.splitext(name)
    if ext.lower() in IMAGE_EXTENSIONS:
        name = stem
    return os.path.join(out_dir, (name or "image") + ".png")


def _fmt_size(n: float) -> str:
    return (
        f"{n:.0f} B" if n < 10_000 else f"{n / 2**10:.1f} KiB" if n < 10 * 2**20 else f"{n / 2**20:.1f} MiB"
    )


class Progress:
    """Reports a batch: a bar with an ETA when stderr is a terminal, else one line per file.

    Args:
      total: number of files.
      verb: "compressed" or "decompressed", for the summary.
      bar: show the bar (default: whether stderr is a terminal).
      prog: program name of the error lines.
    """

    def __init__(self, total: int, verb: str, bar: bool | None = None, prog: str = "jaxlic"):
        self.total, self.verb, self.prog = total, verb, prog
        self.done = self.failed = 0
        self.bytes_in = self.bytes_out = self.pixels = self.stream_bytes = 0
        self.t0 = time.perf_counter()
        self._bar = None
        if bar if bar is not None else _isatty(sys.stderr):
            from tqdm import tqdm

            # mininterval 0: one redraw per file (files take far longer than a redraw)
            self._bar = tqdm(
                total=total, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False, mininterval=0
            )

    def _write_err(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def ok(self, line: str, *, bytes_in: int = 0, bytes_out: int = 0, pixels: int = 0, stream_bytes: int = 0):
        """One file done: ``line`` is printed (without a bar) and the totals grow."""
        self.done += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.pixels += pixels
        self.stream_bytes += stream_bytes
        if self._bar is not None:
            self._bar.update()
        else:
            print(line, flush=True)

    def note(self, name: str, message: str) -> None:
        self._write_err(f"{self.prog}: note: {name}: {message}")

    def fail(self, name: str, message: str, *, counted: bool = True) -> None:
        """One input failed: one ``prog: error: name: message`` line on stderr.

        ``counted``: the input was one of the ``total`` files (advances the bar).
        """
        self.failed += 1
        self._write_err(f"{self.prog}: error: {name}: {' '.join(str(message).split())}")
        if self._bar is not None and counted:
            self._bar.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def summary(self) -> str:
        """The last line of the call (stdout), after :meth:`close`."""
        seconds = time.perf_counter() - self.t0
        parts = [f"{self.verb} {self.done} of {self.done + self.failed} files in {seconds:.1f} s"]
        if self.done:
            parts[0] += f" ({seconds / self.done:.2f} s per file)"
            parts.append(f"{_fmt_size(self.bytes_in)} in, {_fmt_size(self.bytes_out)} out")
            if self.pixels:
                parts.append(f"{8 * self.stream_bytes / self.pixels:.4f} bpp over all images")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Timings:
    """Where a call's time went, for ``--timings``.

    ``with timings.phase("read"):`` adds a phase's wall time; ``with timings.coding(codec):``
    around a ``compress``/``decompress`` call splits it by the codec's ``last_timings``
    (`jaxlic.rdcodec.RDCodec`) into network and range coding. JAX's tracing, lowering and compiling (``jax.monitoring`` events;
    :meth:`watch_jax` once JAX is imported) and the executables :mod:`jaxlic.warm_start` loads
    happen inside those phases (the first call of each function and shape): they are taken out of
    the phase and reported as ``compile`` and ``executables``.
    """

    ORDER = ("imports", "weights", "compile", "executables", "read", "network", "coding", "write")
    _active: Timings | None = None
    _listening = False

    def __init__(self):
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = dict.fromkeys(self.ORDER, 0.0)
        self.jax_compile_s = 0.0
        self.jax_compiles = 0
        Timings._active = self

    def _hidden(self) -> float:
        from jaxlic import warm_start

        return self.jax_compile_s + warm_start.stats()["load_s"]

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def phase(self, name: str):
        return _Phase(self, name)

    def coding(self, codec):
        return _Phase(self, "network", codec)

    @classmethod
    def watch_jax(cls) -> None:
        """Counts JAX's compilation time into the active Timings (one listener per process)."""
        if cls._listening:
            return
        import jax

        def listener(event: str, duration: float, **_) -> None:
            if cls._active is not None and event.startswith("/jax/core/compile/"):
                cls._active.jax_compile_s += duration
                cls._active.jax_compiles += event.endswith("backend_compile_duration")

        jax.monitoring.register_event_duration_secs_listener(listener)
        cls._listening = True

    def report(self) -> str:
        """One line: ``time: imports 0.61 s, weights 0.15 s, ...; total 2.31 s``."""
        from jaxlic import warm_start

        ws = warm_start.stats()
        s = dict(self.seconds)
        s["compile"], s["executables"] = self.jax_compile_s, ws["load_s"]
        total = time.perf_counter() - self.t0
        s["other"] = max(total - sum(s.values()), 0.0)
        counts = {"compile": f" ({self.jax_compiles})", "executables": f" ({ws['loaded']})"}
        parts = [f"{k} {v:.2f} s{counts.get(k, '')}" for k, v in s.items()]
        return f"time: {', '.join(parts)}; total {total:.2f} s"


class _Phase:
    def __init__(self, timings: Timings, name: str, codec=None):
        self.timings, self.name, self.codec = timings, name, codec

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.hidden0 = self.timings._hidden()
        return self

    def __exit__(self, *exc):
        elapsed = time.perf_counter() - self.t0
        hidden = self.timings._hidden() - self.hidden0
        t = self.codec.last_timings if self.codec is not None and exc[0] is None else {}
        coding = min(t.get("coding_s", 0.0), elapsed)
        self.timings._add("coding", coding)
        self.timings._add(self.name, max(elapsed - hidden - coding, 0.0))
        return False
