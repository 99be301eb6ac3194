"""A resident ``jaxlic`` process that codes for the command line: no start-up after the first call.

A new ``jaxlic compress`` / ``decompress`` process spends most of a 1-megapixel call starting up
(importing JAX, loading executables, first calls; ``docs/RESULTS.md``), work that one process does
once. This module keeps such a process alive between calls:

* ``jaxlic server start`` starts it in the background (``stop``, ``status``; ``run`` serves in
  the foreground);
* with ``JAXLIC_SERVER=1`` a ``compress`` or ``decompress`` call starts it when none is running;
* a ``compress`` / ``decompress`` call hands its words, its working folder and (for ``-``) its
  standard input to a running server, which runs them through :func:`jaxlic.cli.main` and sends
  back what the call writes to stdout and stderr, as it writes it (a progress bar included), and
  its exit status. ``JAXLIC_SERVER=0`` codes in the calling process even when a server runs.

What a call prints, writes and exits with is the same either way; the server keeps the codecs it
loaded and their executables (``jaxlic.cli`` decides which: this module knows nothing of codecs
and imports nothing of jaxlic). Calls are served one at a time, in the
order they come. A server serves only calls that would run the same code in the same way: its
socket's name is a hash (:func:`key`) of the Python interpreter, the jaxlic package (each file's
name, size and modification time, the shipped weights included) and every ``JAX*``, ``XLA*``,
``JAXLIC_*`` and ``OMP_*`` environment variable (as the server found them when it started:
importing JAX sets some of its own), so after an edit, or under other
flags, a call finds no server and codes alone (or, with ``JAXLIC_SERVER=1``, starts another).
A server ends after :data:`IDLE_S` seconds without a call (``JAXLIC_SERVER_IDLE``, default 900),
on ``jaxlic server stop`` or on SIGTERM.

The socket lives in a folder only its user can enter (``JAXLIC_SERVER_DIR``, else
``$XDG_RUNTIME_DIR/jaxlic``, else ``/tmp/jaxlic-<uid>``), with the server's log beside it; a
folder that others can enter is refused (the call codes alone). This module imports no JAX: the
client side is what a call pays, about 0.1 s of Python.

Frames, each way: one byte of kind, four of length (big-endian), the payload. Client to server:
``Q`` (the request, JSON) then ``I`` (standard input, possibly empty). Server to client: ``O`` /
``E`` (bytes for stdout / stderr), then ``X`` (JSON: the exit status, or the answer to ``status``
/ ``stop``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time

__all__ = ["key", "folder", "forward", "start", "stop", "status", "serve", "ENV"]

ENV = "JAXLIC_SERVER"  # 1: start one when needed; 0: never use one; unset: use a running one
DIR_ENV = "JAXLIC_SERVER_DIR"
IDLE_S = float(os.environ.get("JAXLIC_SERVER_IDLE", "900"))
COMMANDS = ("compress", "decompress")  # what a call hands over
_START_TIMEOUT_S = 120.0
_ENV_PREFIXES = ("JAX", "XLA", "OMP_")
_NOT_KEYED = (ENV, DIR_ENV, "JAXLIC_SERVER_IDLE", "JAXLIC_DEBUG")
_PACKAGE = pathlib.Path(__file__).resolve().parent


class ServerError(Exception):
    """The server could not be reached or ended during a call (one line)."""


def _setting() -> str:
    return os.environ.get(ENV, "").strip().lower()


def key() -> str:
    """SHA-256 of what decides how a call runs: interpreter, package files, JAX/XLA environment."""
    h = hashlib.sha256()
    h.update(f"{sys.executable}\0{sys.version}\0{_PACKAGE}\0".encode())
    for p in sorted(_PACKAGE.rglob("*")):
        if "__pycache__" in p.parts or not p.is_file():
            continue
        st = p.stat()
        h.update(f"{p.relative_to(_PACKAGE)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for name in sorted(os.environ):
        if name.startswith(_ENV_PREFIXES) and name not in _NOT_KEYED:
            h.update(f"{name}={os.environ[name]}\0".encode())
    return h.hexdigest()


def folder(create: bool = True) -> pathlib.Path | None:
    """The socket folder, made private to this user; None if it is not (or cannot be made) so."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        path = pathlib.Path(explicit)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = pathlib.Path(os.environ["XDG_RUNTIME_DIR"]) / "jaxlic"
    else:
        path = pathlib.Path("/tmp") / f"jaxlic-{os.getuid()}"
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


def _paths(k: str | None = None) -> dict[str, pathlib.Path] | None:
    base = folder()
    if base is None:
        return None
    stem = (k or key())[:20]
    return {s: base / f"{stem}.{s}" for s in ("sock", "lock", "log")}


# -- frames ------------------------------------------------------------------------------------


def _send(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(kind + struct.pack(">I", len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _recv(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _recv_exact(sock, 5)
    return head[:1], _recv_exact(sock, struct.unpack(">I", head[1:])[0])


# -- client ------------------------------------------------------------------------------------


def _connect(sock_path: pathlib.Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(sock_path))
    except OSError:
        s.close()
        return None
    return s


def _ask(sock: socket.socket, request: dict, stdin: bytes = b"", out=None, err=None) -> dict:
    """Sends one request; copies O/E frames to `out`/`err` (binary streams); returns X's JSON."""
    try:
        _send(sock, b"Q", json.dumps(request).encode())
        _send(sock, b"I", stdin)
        while True:
            kind, payload = _recv(sock)
            if kind == b"X":
                return json.loads(payload)
            stream = out if kind == b"O" else err
            if stream is not None:
                stream.write(payload)
                stream.flush()
    except (OSError, ValueError) as e:
        raise ServerError(f"the jaxlic server ended during the call ({e})") from None
    finally:
        sock.close()


def start() -> tuple[bool, pathlib.Path | None]:
    """Starts a server for this key unless one runs. Returns (running, its log's path)."""
    paths = _paths()
    if paths is None:
        return False, None
    s = _connect(paths["sock"])
    if s is not None:
        s.close()
        return True, paths["log"]
    with open(paths["log"], "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jaxlic.cli", "server", "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not killed by the terminal's Ctrl-C
            cwd="/",
        )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        s = _connect(paths["sock"])
        if s is not None:
            s.close()
            return True, paths["log"]
        if proc.poll() not in (None, 0):  # failed (0: another server holds the lock; wait for it)
            return False, paths["log"]
        time.sleep(0.05)
    return False, paths["log"]


def _running() -> socket.socket | None:
    paths = _paths()
    return None if paths is None else _connect(paths["sock"])


def status() -> dict | None:
    """The running server's pid, uptime, calls served and memory; None when none runs."""
    s = _running()
    return None if s is None else _ask(s, {"op": "status"})


def stop() -> dict | None:
    """Ends the running server (after the call it is serving); its last status, or None."""
    s = _running()
    return None if s is None else _ask(s, {"op": "stop"})


def forward(argv: list[str]) -> int | None:
    """Runs a ``compress``/``decompress`` call in the server; None: code in this process instead.

    Used when ``JAXLIC_SERVER`` is not 0 and a server for this key runs (``JAXLIC_SERVER=1``:
    started here if none runs).
    """
    setting = _setting()
    if not argv or argv[0] not in COMMANDS or setting in ("0", "false", "no", "off"):
        return None
    sock = _running()
    if sock is None and setting in ("1", "true", "yes", "on"):
        ok, log = start()
        if ok:
            sock = _running()
        if sock is None:
            why = f"log: {log}" if log else "no private folder for its socket: set JAXLIC_SERVER_DIR"
            print(
                f"jaxlic: note: the jaxlic server did not start ({why}); coding in this process",
                file=sys.stderr,
            )
    if sock is None:
        return None
    stdin = sys.stdin.buffer.read() if "-" in argv[1:] and not _stdin_is_tty() else b""
    request = {
        "op": "run",
        "argv": argv,
        "cwd": os.getcwd(),
        "stdin": "-" in argv[1:],
        "tty": [_isatty(sys.stdout), _isatty(sys.stderr)],
        "columns": _columns(),
        "debug": os.environ.get("JAXLIC_DEBUG", ""),
    }
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        answer = _ask(sock, request, stdin, out=sys.stdout.buffer, err=sys.stderr.buffer)
    except ServerError as e:
        print(f"jaxlic: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxlic: interrupted", file=sys.stderr)
        return 130
    return int(answer.get("exit", 1))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _stdin_is_tty() -> bool:
    return _isatty(sys.stdin)


def _columns() -> int:
    with contextlib.suppress(OSError):
        return os.get_terminal_size(sys.stderr.fileno()).columns
    return 80


# -- server ------------------------------------------------------------------------------------


class _ClientGone(BaseException):
    """The client of the call went away (Ctrl-C, a closed pipe): the call ends at its next write.

    A BaseException, so that the CLI's per-file error handling (``except Exception``) does not
    take it for a failed file and go on coding the rest of a batch for nobody."""


class _FrameWriter(io.RawIOBase):
    """A binary stream whose writes go to the client as `kind` frames; a tty if the client's is."""

    def __init__(self, sock: socket.socket, kind: bytes, tty: bool):
        self.sock, self.kind, self.tty = sock, kind, tty

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.tty

    def write(self, b) -> int:
        data = bytes(b)
        if data:
            try:
                _send(self.sock, self.kind, data)
            except OSError:
                raise _ClientGone from None
        return len(data)


class _Unbuffered(io.BufferedWriter):
    """Sends each write at once: a progress bar's ``\r`` updates and the order of stdout and
    stderr reach the client as the call makes them."""

    def write(self, b) -> int:
        n = super().write(b)
        self.flush()
        return n


def _text(raw: io.RawIOBase) -> io.TextIOWrapper:
    return io.TextIOWrapper(_Unbuffered(raw), encoding="utf-8", errors="replace", write_through=True)


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def _run(sock: socket.socket, request: dict, stdin: bytes, run_call) -> int:
    out = _text(_FrameWriter(sock, b"O", bool(request["tty"][0])))
    err = _text(_FrameWriter(sock, b"E", bool(request["tty"][1])))
    saved = sys.stdin, sys.stdout, sys.stderr, os.getcwd(), dict(os.environ)
    try:
        os.chdir(request["cwd"])
        os.environ["COLUMNS"] = str(request.get("columns") or 80)
        if request.get("debug"):
            os.environ["JAXLIC_DEBUG"] = request["debug"]
        else:
            os.environ.pop("JAXLIC_DEBUG", None)
        sys.stdin = _Stdin(io.BytesIO(stdin), encoding="utf-8")
        sys.stdout, sys.stderr = out, err
        try:
            code = run_call(request["argv"])
        except SystemExit:  # SIGTERM's handler: the server ends
            raise
        except _ClientGone:
            return 130
        except BaseException as e:  # noqa: BLE001  (a call never ends the server)
            code = 130 if isinstance(e, KeyboardInterrupt) else 1
            with contextlib.suppress(BaseException):
                print(f"jaxlic: internal error in the server: {type(e).__name__}: {e}", file=err)
        with contextlib.suppress(BaseException):
            out.flush()
            err.flush()
        return code
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved[:3]
        with contextlib.suppress(OSError):
            os.chdir(saved[3])
        os.environ.clear()
        os.environ.update(saved[4])


def _rss_mb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def serve(run_call, server_key: str, about=dict, idle_s: float = IDLE_S) -> int:
    """Serves calls with ``run_call(argv) -> exit status`` until idle for `idle_s`, a ``stop``
    request or SIGTERM; ``about()`` adds to the status. ``server_key``: :func:`key` as it was
    before this process imported JAX. Returns 0 at once when another server of this key runs (it
    holds the lock)."""
    paths = _paths(server_key)
    if paths is None:
        print("jaxlic server: no private socket folder", file=sys.stderr)
        return 1
    lock = open(paths["lock"], "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server of this key runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started, served = time.time(), 0
    with contextlib.suppress(FileNotFoundError):
        paths["sock"].unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(paths["sock"]))
    listener.listen(16)
    listener.settimeout(idle_s)
    print(f"{time.strftime('%FT%T')} jaxlic server {os.getpid()} ready: {paths['sock']}", flush=True)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                print(f"{time.strftime('%FT%T')} idle for {idle_s:g} s: ending", flush=True)
                return 0
            conn.settimeout(None)
            try:
                try:
                    kind, payload = _recv(conn)
                except ConnectionError:
                    continue  # a client that only checked that the server runs
                _, stdin = _recv(conn)
                request = json.loads(payload) if kind == b"Q" else {}
                op = request.get("op")
                if op == "run":
                    code = _run(conn, request, stdin, run_call)
                    served += 1
                    _send(conn, b"X", json.dumps({"exit": code}).encode())
                    continue
                answer = {
                    "pid": os.getpid(),
                    "uptime_s": round(time.time() - started, 1),
                    "calls": served,
                    **about(),
                    "rss_mb": round(_rss_mb(), 1),
                    "cpu_s": round(sum(os.times()[:2]), 3),
                    "socket": str(paths["sock"]),
                    "log": str(paths["log"]),
                }
                _send(conn, b"X", json.dumps(answer).encode())
                if op == "stop":
                    print(f"{time.strftime('%FT%T')} stopped after {served} call(s)", flush=True)
                    return 0
            except (OSError, ValueError) as e:  # a client that went away: serve the next one
                print(f"{time.strftime('%FT%T')} call dropped: {type(e).__name__}: {e}", flush=True)
            finally:
                conn.close()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            paths["sock"].unlink()
