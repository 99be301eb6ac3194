"""The CLI's persistent compilation cache: where it goes, that a CLI process fills it, how to turn it off."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from jaxlic import compile_cache

# Also the thresholds the test session's own cache sets (tests/conftest.py).
_CACHE_VARS = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
    "XDG_CACHE_HOME",
    compile_cache.DISABLE_ENV,
)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _CACHE_VARS}
    env.update(extra)
    return env


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    for k in _CACHE_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tag = compile_cache.host_tag()
    assert len(tag) == 12 and tag == compile_cache.host_tag()
    assert compile_cache.default_dir() == tmp_path / "home" / ".cache" / "jaxlic" / "xla" / tag
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_dir() == tmp_path / "xdg" / "jaxlic" / "xla" / tag
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.default_dir() == tmp_path / "jax"


def test_enable_sets_jax_options_and_env_turns_it_off(tmp_path):
    script = (
        "import jax; from jaxlic import compile_cache; f = compile_cache.enable(); "
        "print(f, jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(XDG_CACHE_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    folder = str(tmp_path / "jaxlic" / "xla" / compile_cache.host_tag())
    assert out == [folder, folder, "0.0"]
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(XDG_CACHE_HOME=str(tmp_path / "off"), JAXLIC_NO_COMPILE_CACHE="1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["None", "None", "1.0"]  # JAX's defaults untouched
    assert not (tmp_path / "off").exists()


@pytest.mark.slow
def test_cli_process_fills_the_cache_unless_turned_off(tmp_path):
    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")

    def compress(env, out):
        cmd = [sys.executable, "-m", "jaxlic.cli", "compress", str(tmp_path / "in.png"), str(tmp_path / out)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr

    compress(_env(XDG_CACHE_HOME=str(tmp_path / "on")), "a.jlic")
    entries = [p for p in pathlib.Path(tmp_path / "on" / "jaxlic" / "xla").rglob("*") if p.is_file()]
    assert len(entries) >= 3  # analysis, hyper-synthesis, entropy parameters (at least)

    compress(_env(XDG_CACHE_HOME=str(tmp_path / "off"), JAXLIC_NO_COMPILE_CACHE="1"), "b.jlic")
    assert not (tmp_path / "off").exists()
    assert (tmp_path / "a.jlic").read_bytes() == (tmp_path / "b.jlic").read_bytes()
