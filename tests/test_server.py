"""The resident server (`jaxlic.server`): calls it serves print, write and exit as calls that code
alone, with the real default model, in real processes."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from jaxlic import server

CLI = [sys.executable, "-m", "jaxlic.cli"]


def run(args, env, cwd, stdin=None, server_setting="1"):
    return subprocess.run(
        CLI + list(args),
        env=dict(env, JAXLIC_SERVER=server_setting),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=900,
    )


def calls(env, cwd) -> int | None:
    r = run(["server", "status"], env, cwd)
    m = re.search(rb"(\d+) call\(s\)", r.stdout)
    return int(m.group(1)) if m else None


def without_times(text: bytes) -> str:
    return re.sub(r"\d+\.\d+ s", "T s", text.decode())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(env, work folder): a private server folder; the server is stopped at the end."""
    folder = tmp_path_factory.mktemp("server")
    folder.chmod(0o700)
    work = tmp_path_factory.mktemp("work")
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (48, 64, 3)).cumsum(axis=1) / 8, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(work / "photo.png")
    env = dict(os.environ, JAXLIC_SERVER_DIR=str(folder), JAXLIC_SERVER_IDLE="600")
    yield env, work
    run(["server", "stop"], env, work)


def test_served_calls_write_and_print_what_calls_alone_do(served):
    env, work = served
    alone = run(["compress", "photo.png", "alone.jlic", "--rate", "2"], env, work, server_setting="0")
    assert alone.returncode == 0, alone.stderr
    assert calls(env, work) is None  # JAXLIC_SERVER=0 started nothing
    first = run(["compress", "photo.png", "served.jlic", "--rate", "2"], env, work)  # starts it
    assert first.returncode == 0, first.stderr
    assert calls(env, work) == 1
    assert (work / "served.jlic").read_bytes() == (work / "alone.jlic").read_bytes()
    assert without_times(first.stdout) == without_times(alone.stdout).replace("alone", "served")
    d_alone = run(["decompress", "alone.jlic", "alone.png"], env, work, server_setting="0")
    d_served = run(["decompress", "served.jlic", "served.png"], env, work, server_setting="")  # unset: use it
    assert d_alone.returncode == d_served.returncode == 0, d_served.stderr
    assert (work / "served.png").read_bytes() == (work / "alone.png").read_bytes()
    assert calls(env, work) == 2
    # JAXLIC_SERVER=0 codes alone even though a server runs
    assert (
        run(["compress", "photo.png", "x.jlic", "--rate", "2"], env, work, server_setting="0").returncode == 0
    )
    assert calls(env, work) == 2


def test_stdin_and_stdout_go_through_the_server(served):
    env, work = served
    stream = run(["compress", "-", "-", "--rate", "2"], env, work, stdin=(work / "photo.png").read_bytes())
    assert stream.returncode == 0, stream.stderr
    alone = run(["compress", "photo.png", "-", "--rate", "2"], env, work, server_setting="0")
    assert stream.stdout == alone.stdout and stream.stdout[:4] != b""
    png = run(["decompress", "-", "-"], env, work, stdin=stream.stdout)
    assert png.returncode == 0 and png.stdout.startswith(b"\x89PNG")
    assert b"<stdin> -> <stdout>" in png.stderr


def test_errors_are_the_same_one_line_and_exit_status(served):
    env, work = served
    run(["compress", "photo.png", "warm.jlic"], env, work)  # make sure a server runs
    n = calls(env, work)
    for args, code in (
        (["compress", "missing.png", "o.jlic"], 1),
        (["compress", "photo.png", "warm.jlic"], 1),  # exists, no --force
        (["decompress", "photo.png", "o.png"], 1),  # not a stream
        (["compress", "--rate"], 2),
    ):
        served_r = run(args, env, work)
        alone_r = run(args, env, work, server_setting="0")
        assert served_r.returncode == alone_r.returncode == code, (args, served_r.stderr)
        assert served_r.stderr == alone_r.stderr, args
        assert len(served_r.stderr.decode().strip().splitlines()) == 1 or code == 2
        assert b"Traceback" not in served_r.stderr
    assert calls(env, work) == n + 4


def test_a_batch_with_a_bad_file_finishes_and_fails_through_the_server(served):
    env, work = served
    (work / "bad.png").write_bytes(b"not an image")
    r = run(["compress", "photo.png", "bad.png", "--out-dir", "out", "--rate", "1"], env, work)
    assert r.returncode == 1
    assert (work / "out" / "photo.png.jlic").exists() and not (work / "out" / "bad.png.jlic").exists()
    err = r.stderr.decode()
    assert "bad.png" in err and "\r" not in err  # piped: plain lines, no progress bar


def test_another_environment_finds_no_server(served):
    env, work = served
    run(["compress", "photo.png", "warm2.jlic", "--force"], env, work)
    assert calls(env, work) is not None
    other = dict(env, XLA_FLAGS=env.get("XLA_FLAGS", "") + " --xla_cpu_enable_fast_math=false")
    assert calls(other, work) is None


def test_a_folder_others_can_enter_is_refused(tmp_path, monkeypatch):
    tmp_path.chmod(0o755)
    monkeypatch.setenv("JAXLIC_SERVER_DIR", str(tmp_path))
    assert server.folder() is None
    r = run(["server", "start"], dict(os.environ), tmp_path)
    assert r.returncode == 1 and r.stderr.decode().startswith("jaxlic: error: no private folder")
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(tmp_path / "a.png")
    r = run(["compress", "a.png", "a.jlic"], dict(os.environ), tmp_path)  # JAXLIC_SERVER=1: codes alone
    assert r.returncode == 0 and (tmp_path / "a.jlic").exists()
    assert r.stderr.decode().startswith("jaxlic: note: the jaxlic server did not start (no private folder")
    tmp_path.chmod(0o700)
    assert server.folder() == tmp_path


def test_an_idle_server_ends_and_removes_its_socket(tmp_path):
    tmp_path.chmod(0o700)
    env = dict(os.environ, JAXLIC_SERVER_DIR=str(tmp_path), JAXLIC_SERVER_IDLE="1")
    r = run(["server", "start"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 60
    while list(tmp_path.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(tmp_path.glob("*.sock"))
    assert b"idle for 1 s: ending" in next(tmp_path.glob("*.log")).read_bytes()
    assert run(["server", "status"], env, tmp_path).returncode == 1


def test_frames_carry_bytes_at_once_and_the_clients_terminal():
    a, b = socket.socketpair()
    out = server._text(server._FrameWriter(a, b"E", tty=True))
    assert out.isatty()
    out.write("progress\r")
    server._send(a, b"X", json.dumps({"exit": 3}).encode())
    assert server._recv(b) == (b"E", b"progress\r")
    assert server._recv(b) == (b"X", b'{"exit": 3}')
    a.close()
    with pytest.raises(ConnectionError):
        server._recv(b)


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "progress-bar"])
def test_a_batch_stops_when_its_client_goes_away(served, terminal):
    env, work = served
    run(["compress", "photo.png", "w.jlic", "--force"], env, work)  # the server runs, the codec is loaded
    folder = work / f"many-{terminal}"
    folder.mkdir()
    for i in range(8):
        (folder / f"{i}.png").write_bytes((work / "photo.png").read_bytes())
    sock = server._connect(pathlib.Path(env["JAXLIC_SERVER_DIR"]) / f"{_key_of(env, work)[:20]}.sock")
    request = {
        "op": "run",
        "argv": ["compress", str(folder), "--out-dir", str(work / f"gone-{terminal}"), "--rate", "1"],
        "cwd": str(work),
        "stdin": False,
        "tty": [False, terminal],
        "columns": 80,
        "debug": "",
    }
    server._send(sock, b"Q", json.dumps(request).encode())
    server._send(sock, b"I", b"")
    assert server._recv(sock)[0] in (b"O", b"E")  # the first file's line: the batch is under way
    sock.close()  # the client goes away (Ctrl-C)
    deadline = time.monotonic() + 120
    while calls(env, work) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    written = list((work / f"gone-{terminal}").glob("*.jlic"))
    assert 1 <= len(written) < 8  # it stopped at a later file's line, not after all of them


def _key_of(env, cwd) -> str:
    r = subprocess.run(
        [sys.executable, "-c", "from jaxlic import server; print(server.key())"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.strip()


def test_sigterm_during_a_call_ends_the_server(tmp_path):
    tmp_path.chmod(0o700)
    env = dict(os.environ, JAXLIC_SERVER_DIR=str(tmp_path / "s"), JAXLIC_SERVER_IDLE="600")
    (tmp_path / "s").mkdir(mode=0o700)
    work = tmp_path / "w"
    (work / "in").mkdir(parents=True)
    img = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    for i in range(8):
        Image.fromarray(img).save(work / "in" / f"{i}.png")
    assert run(["compress", "in/0.png", "w.jlic"], env, work).returncode == 0  # starts it, loads the codec
    pid = json.loads(run(["server", "status", "--json"], env, work).stdout)["pid"]
    client = subprocess.Popen(
        CLI + ["compress", "in", "--out-dir", "out", "--rate", "1"],
        env=dict(env, JAXLIC_SERVER="1"),
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client.stdout.readline()  # the first file is done: the call is under way
    os.kill(pid, signal.SIGTERM)
    client.communicate(timeout=120)
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)
    assert not list((tmp_path / "s").glob("*.sock"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
