"""A checkpoint written by an older trainer resumes with this one as the older trainer resumed it.

tests/fixtures/train_resume holds the step-3 checkpoint of a tiny run (bmshj2018-hyperprior,
N = M = 8, 64 px crops, batch 2; config frozen in record.json) made by the trainer as it was
before it was split into modules (commit 8806c04), and, per machine, what that trainer did after
resuming it (`records`): the digests of the parameters and optimiser state at step 6, of the
exported weights, and every training and validation scalar of steps 4 to 6.

The trainer of this checkout resumes the same checkpoint in a fresh process
(`tests/train_resume_run.py`, fixed XLA:CPU flags). Where a record was made with this machine's
arithmetic (the same `arithmetic()` digest), it must reproduce that record bit for bit, so that a
running training campaign survives a change of the trainer. Everywhere, its scalars must agree
with every record to RTOL: XLA:CPU's dots and convolutions pick kernels by the CPU at run time, so
two machines differ in the last bits (1.1e-7 relative at most between the AVX2 and AVX-512
records), while a trainer that resumes wrongly (a step off, another batch, a lost optimiser
state) moves them by far more (`test_the_tolerance_tells_one_step_from_the_next`).
"""

import json
import pathlib
import subprocess
import sys

import pytest
import train_resume_run as fixture_run

pytestmark = pytest.mark.slow  # a subprocess that trains

RECORD = json.loads((fixture_run.FIXTURE / "record.json").read_text())
RTOL = 1e-5


@pytest.fixture(scope="module")
def resumed():
    """This checkout's resumed run: {'machine', 'arithmetic', 'resumed'}."""
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
    return json.loads(line[len("RESUMED ") :])


def far(a: float, b: float) -> bool:
    return abs(a - b) > RTOL * max(abs(a), abs(b))


def test_fixture_is_the_old_trainers_checkpoint():
    """The fixture is what the test claims: one checkpoint at step 3 of a 6-step run, and records."""
    steps = sorted(p.name for p in (fixture_run.FIXTURE / "checkpoints").iterdir())
    assert steps == [str(fixture_run.STEPS_BEFORE)]
    assert RECORD["config"]["num_steps"] == fixture_run.STEPS_BEFORE + fixture_run.STEPS_AFTER
    assert any(r["arithmetic"] for r in RECORD["records"])  # at least one machine can check bits
    for r in RECORD["records"]:
        assert r["resumed"]["step"] == RECORD["config"]["num_steps"]
        assert sorted(r["resumed"]["scalars"]) == ["4", "5", "6"]
        assert "val/loss" in r["resumed"]["scalars"]["6"]


def test_the_tolerance_tells_one_step_from_the_next():
    """RTOL is loose enough for two machines and tight enough to see one step of training."""
    for r in RECORD["records"]:
        s = r["resumed"]["scalars"]
        for a, b in (("4", "5"), ("5", "6")):
            moved = [k for k in ("train/loss", "train/mse", "train/bpp") if far(s[a][k], s[b][k])]
            assert moved == ["train/loss", "train/mse", "train/bpp"], (a, b)
    first, *others = RECORD["records"]
    for r in others:
        for step, values in first["resumed"]["scalars"].items():
            assert not [k for k, v in values.items() if far(v, r["resumed"]["scalars"][step][k])], step


def test_old_checkpoint_resumes_as_every_record_within_rounding(resumed):
    got = resumed["resumed"]
    for r in RECORD["records"]:
        want = r["resumed"]
        assert sorted(got["scalars"]) == sorted(want["scalars"])
        for step, values in want["scalars"].items():
            assert sorted(got["scalars"][step]) == sorted(values), step
            off = {
                k: (got["scalars"][step][k], v) for k, v in values.items() if far(got["scalars"][step][k], v)
            }
            assert not off, f"step {step} against the record of {r['machine']}: {off}"
        for key in ("step", "exported", "exported_lmbda"):
            assert got[key] == want[key], key


def test_old_checkpoint_resumes_bit_identically_where_this_arithmetic_was_recorded(resumed):
    same = [r for r in RECORD["records"] if r["arithmetic"] == resumed["arithmetic"]]
    if not same:
        pytest.skip(
            f"no record for this machine's arithmetic ({resumed['arithmetic']}, {resumed['machine']}): "
            "make one with the old trainer as tests/train_resume_run.py says"
        )
    got, want = resumed["resumed"], same[0]["resumed"]
    hint = f"(record of {same[0]['machine']}, jax {same[0]['jax']})"
    assert got["scalars"] == want["scalars"], hint
    for key in ("step", "params", "opt_state", "exported", "exported_params", "exported_lmbda"):
        assert got[key] == want[key], f"{key} {hint}"
