"""The test suite's own machinery: `xdist_group` keeps a module's expensive fixture on one worker."""

import os
import subprocess
import sys

MODULE = """
import os, pytest

@pytest.fixture(scope="module")
def built():
    with open(os.environ["SETUPS"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(12))
def test_grouped(built, i):
    pass

@pytest.mark.parametrize("i", range(12))
def test_free(i):
    pass
"""


def test_xdist_group_keeps_a_module_fixture_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(MODULE)
    setups = tmp_path / "setups.txt"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env={**os.environ, "SETUPS": str(setups)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    assert len(setups.read_text().split()) == 1, "the grouped tests ran on more than one worker"
