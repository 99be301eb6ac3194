"""tools/gpu_run.sh end to end on JAX's CPU backend: smoke config, a tiny budget and image folder."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_run_script_trains_within_the_budget_and_writes_its_outputs(write_images, tmp_path):
    data = tmp_path / "data" / "train"
    write_images(data, n=4, size=(80, 96))
    image = tmp_path / "tiny.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "out"
    env = dict(
        os.environ,
        OUT=str(out),
        BUDGET_S="5",
        CONFIG="train/configs/ckbd.py:smoke,ckbd",
        TRAIN_FLAGS="--config.num_steps=1000 --config.async_checkpointing=False",
        EVAL_DIR="",
        WHEELS=str(tmp_path / "no-wheels"),
        STEP_ARGS="--steps 2",
        SPEED_ARGS=f"--models ckbd --N 8 --repeats 1 --no-flops --image {image}",
        CODING_ARGS="--repeats 1",
        PYTHON=sys.executable,
        JAX_PLATFORMS="cpu",
    )
    r = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_run.sh"), str(data)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    names = sorted(p.name for p in out.iterdir())
    assert len(names) <= 8
    expected = ["coding_speed.json", "export.tgz", "run.log", "speed.json", "step_time.json", "summary.json"]
    assert set(expected) <= set(names), names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_rc"] == 0 and summary["speed_rc"] == 0 and summary["coding_speed_rc"] == 0
    assert summary["export"] == "ckbd-q3.json" and 1 <= summary["metrics"]["step"] < 1000
    assert summary["step_time"]["step_s"] > 0
    listing = subprocess.run(["tar", "tzf", str(out / "export.tgz")], capture_output=True, text=True).stdout
    assert "export/ckbd-q3.msgpack" in listing and "config.json" in listing
