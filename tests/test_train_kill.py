"""A training process killed with SIGKILL resumes to bit-identical weights.

`test_train.py` halts a run in-process at a step boundary; this test kills a real
`python -m train.main` process at whatever moment it happens to be at (mid-step, mid-way through an
asynchronous checkpoint write), then resumes it with the same command.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxlic import weights

pytestmark = pytest.mark.slow  # subprocesses that train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 40


def command(workdir, data_dir):
    return [
        sys.executable,
        "-m",
        "train.main",
        "--config",
        "train/configs/cheng2020.py:smoke",
        f"--workdir={workdir}",
        "--config.model=bmshj2018-hyperprior",
        f"--config.num_steps={STEPS}",
        "--config.checkpoint_every_steps=3",
        "--config.eval_every_steps=1000",
        "--config.log_every_steps=10",
        "--config.data.num_eval_images=0",
        f"--config.data.source={data_dir}",
        f"--config.data.eval_dir={data_dir}",
        "--config.data.num_threads=1",
    ]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("xla_cache"))
    e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    e["JAX_PLATFORMS"] = "cpu"
    return e


def exported(workdir):
    params, _ = weights.load(pathlib.Path(workdir) / "export" / "bmshj2018-hyperprior-q3.msgpack")
    return params


def test_sigkill_then_resume_matches_an_uninterrupted_run(write_images, tmp_path, env):
    data_dir = tmp_path / "data"
    write_images(data_dir, n=4, size=(80, 96))
    ref = subprocess.run(
        command(tmp_path / "ref", data_dir), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert ref.returncode == 0, ref.stderr[-3000:]

    workdir = tmp_path / "killed"
    proc = subprocess.Popen(
        command(workdir, data_dir), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = workdir / "checkpoints"
    deadline = time.monotonic() + 300
    # Kill as soon as the first checkpoint is complete (orbax renames its temporary folder to the
    # step number): the run is then mid-way to the next one, perhaps writing it.
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists() and any(p.name.isdigit() for p in ckpt.iterdir()):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (workdir / "export").exists()

    resumed = subprocess.run(
        command(workdir, data_dir), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_from = [l for l in resumed.stderr.splitlines() if "Resumed from step" in l]
    assert resumed_from and int(resumed_from[0].split()[-1]) < STEPS, resumed.stderr[-3000:]

    a = _leaves(exported(tmp_path / "ref"))
    b = _leaves(exported(workdir))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}/{k}"))
        return out
    return {prefix: np.asarray(tree)}
