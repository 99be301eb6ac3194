"""Data-parallel training spread over fake CPU devices and over two real processes; the CLI.

Each test runs subprocesses: the device count (XLA_FLAGS) is fixed at JAX start-up, and
`jax.distributed.initialize` needs processes of its own.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses that train

REPO = pathlib.Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "multiprocess_train_check.py"


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    """A compilation cache shared by the subprocesses (several compile the same 1-device step)."""
    return str(tmp_path_factory.mktemp("xla_cache"))


def _env(cache, **extra):
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_COMPILATION_CACHE_DIR=cache,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        **extra,
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _run(cmd, env, timeout=240):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def test_same_losses_and_params_on_1_and_4_fake_cpu_devices(write_images, tmp_path, xla_cache):
    write_images(tmp_path / "data", n=4)
    env = _env(xla_cache, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env.pop("JAX_PLATFORMS", None)
    _run(
        [
            sys.executable,
            str(TOOL),
            "reference",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(tmp_path / "data"),
            "--num-processes",
            "1",
            "--devices",
            "1,4",
            "--batch",
            "4",
        ],
        env,
    )
    one, four = np.load(tmp_path / "params-ref-d1.npz"), np.load(tmp_path / "params-ref-d4.npz")
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    assert one["losses"][-1] != one["losses"][0]
    for name in one.files:
        np.testing.assert_allclose(four[name], one[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_two_processes_end_identical_and_match_a_single_process(write_images, tmp_path, xla_cache):
    write_images(tmp_path / "data", n=6)
    proc = _run(
        [
            sys.executable,
            str(TOOL),
            "check",
            "--out",
            str(tmp_path / "out"),
            "--data-dir",
            str(tmp_path / "data"),
            "--num-processes",
            "2",
            "--batch",
            "4",
        ],
        _env(xla_cache),
        timeout=400,
    )
    assert "OK: 2 processes agree" in proc.stdout


def test_cli_trains_with_overrides_and_exports(write_images, tmp_path, xla_cache):
    write_images(tmp_path / "data", n=3)
    workdir = tmp_path / "work"
    _run(
        [
            sys.executable,
            "-m",
            "train.main",
            "--config",
            "train/configs/cheng2020.py:smoke,bmshj2018-hyperprior",
            "--workdir",
            str(workdir),
            "--config.num_steps=2",
            "--config.lmbda=0.0067",
            "--config.N=8",
            "--config.M=8",
            f"--config.data.source={tmp_path / 'data'}",
            f"--config.data.eval_dir={tmp_path / 'data'}",
        ],
        _env(xla_cache),
    )
    meta = json.loads((workdir / "export" / "bmshj2018-hyperprior-q3.json").read_text())
    assert meta["lmbda"] == 0.0067 and (meta["N"], meta["M"]) == (8, 8)
    assert (workdir / "export" / "bmshj2018-hyperprior-q3.msgpack").stat().st_size > 0
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
