"""A process in another interpreter that answers requests one JSON line at a time.

The benchmarks time CompressAI side by side with jaxlic. CompressAI lives in the reference
interpreter (torch, numpy<2; tools/make_reference_env.sh), so its half runs there as a script
that ``serve``s requests, and the jaxlic half drives it with a ``Worker``, one request per turn,
interleaved with its own turns.

The protocol, one JSON object per line each way:

    worker -> {"ready": [...], ...about}       once, when it is set up (models built, warmed up)
    client -> COMMAND ARGUMENT                  e.g. "round Cheng2020Anchor", "steps 3"
    worker -> {...} or {"error": "one line"}
    client -> quit                              (or the end of its input)

This module uses the standard library only: the reference interpreter imports it as a plain
module (``from worker import serve``, the script's folder being on its path) and jaxlic's side
as ``eval.worker``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable


def serve(handlers: dict[str, Callable[[str], dict]], ready, about=None, lines=None, out=None) -> None:
    """Answers each request line with ``handlers[COMMAND](ARGUMENT)``; a failure answers one line."""
    lines = sys.stdin if lines is None else lines
    out = sys.stdout if out is None else out

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"ready": ready, **(about or {})})
    for line in lines:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            return
        try:
            if cmd not in handlers:
                raise ValueError(f"unknown request {line.strip()!r}")
            reply(handlers[cmd](arg))
        except Exception as e:  # one line back to the client, which raises it
            reply({"error": f"{type(e).__name__}: {e}".splitlines()[0]})


class Worker:
    """Starts ``cmd`` and waits for its ready line; ``ask`` sends one request, returns the answer.

    ``about`` holds the ready line's fields (versions, threads, device) and ``ready`` its list.
    A worker that fails, or ends, is a one-line RuntimeError naming ``what`` (with the last line
    it wrote to stderr).
    """

    def __init__(self, cmd: list[str], what: str = "worker"):
        self.what = what
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        try:
            self.about = self.ask(None)
        except BaseException:
            self.close()
            raise
        self.ready = self.about.pop("ready")

    def ask(self, request: str | None) -> dict:
        if request is not None:
            try:
                self.proc.stdin.write(request + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass  # reported below, with the worker's last words
        answer = self.proc.stdout.readline()
        if not answer:
            self.proc.wait()
            self._stderr.seek(0)
            last = (self._stderr.read().strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{self.what} ended (exit {self.proc.returncode}): {last}")
        reply = json.loads(answer)
        if "error" in reply:
            raise RuntimeError(f"{self.what}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                f.close()
            except BrokenPipeError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
