"""A checkpoint written by an older trainer resumes bit-identically with this one.

tests/fixtures/train_resume holds the step-3 checkpoint of a tiny run (bmshj2018-hyperprior,
N = M = 8, 64 px crops, batch 2; config frozen in record.json) made by the trainer as it was
before it was split into modules (commit 8806c04), and what that trainer did after resuming it
(`resumed`): the digests of the parameters and optimiser state at step 6, of the exported
weights, and every training and validation scalar of steps 4 to 6. The trainer of this checkout
resumes the same checkpoint and must reproduce all of it bit for bit, so that a running training
campaign survives a change of the trainer. `tests/train_resume_run.py` makes, records and
resumes the fixture (see its docstring), in a fresh process with XLA:CPU flags that give the
same arithmetic on any x86 machine.
"""

import json
import pathlib
import subprocess
import sys

import pytest
import train_resume_run as fixture_run

pytestmark = pytest.mark.slow  # a subprocess that trains

RECORD = json.loads((fixture_run.FIXTURE / "record.json").read_text())


def test_fixture_is_the_old_trainers_checkpoint():
    """The fixture is what the test claims: one checkpoint at step 3 of a 6-step run, and a record."""
    steps = sorted(p.name for p in (fixture_run.FIXTURE / "checkpoints").iterdir())
    assert steps == [str(fixture_run.STEPS_BEFORE)]
    assert RECORD["config"]["num_steps"] == fixture_run.STEPS_BEFORE + fixture_run.STEPS_AFTER
    assert RECORD["resumed"]["step"] == RECORD["config"]["num_steps"]
    assert sorted(RECORD["resumed"]["scalars"]) == ["4", "5", "6"]
    assert "val/loss" in RECORD["resumed"]["scalars"]["6"]


def test_old_checkpoint_resumes_bit_identically():
    proc = subprocess.run(
        [sys.executable, str(pathlib.Path(fixture_run.__file__)), "resume"],
        env=fixture_run.environment(),
        cwd=fixture_run.REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESUMED "))
    got, want = json.loads(line[len("RESUMED ") :]), RECORD["resumed"]
    made_with = RECORD["made_with"]["jax"]
    hint = f"(recorded with jax {made_with}; a jax upgrade may move the digests: see train_resume_run.py)"
    assert got["scalars"] == want["scalars"], hint
    for key in ("step", "params", "opt_state", "exported", "exported_params", "exported_lmbda"):
        assert got[key] == want[key], f"{key} {hint}"
