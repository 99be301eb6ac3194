"""Where a result came from: the command line, the machine (its CPU and vector extension), the versions,
the date and the load.

One place for `jaxlic eval`'s records and for the benchmarks (``eval/harness.py`` loads this file
by its path, so that it also runs in interpreters without jaxlic: standard library only, and jax
is described only if the process has imported it already).
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from importlib import metadata


def _cpuinfo(cpuinfo: str) -> dict[str, str]:
    """The first value of each key of a ``/proc/cpuinfo``-style file ({} where it cannot be read)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``cpuinfo``, else the platform's processor name, else ''."""
    return _cpuinfo(cpuinfo).get("model name") or platform.processor() or ""


#: The widest vector extension a CPU's ``flags`` (x86) or ``Features`` (Arm) line names, widest first:
#: what decides which kernels XLA's and YNNPACK's runtime dispatch picks, so two CPUs of one model
#: name (cloud VMs: "AMD EPYC") can be two implementations.
ISAS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sve", "SVE"), ("asimd", "NEON"))


def vector_extension(fields: dict[str, str]) -> str:
    """The widest of ``ISAS`` that cpuinfo's ``fields`` name, '' where none."""
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return next((name for flag, name in ISAS if flag in flags), "")


def versions(*packages: str) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None where one is not installed), without importing them."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the system has them."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def provenance(
    command: str | None = None,
    loadavg_at_start: list[float] | None = None,
    started: str | None = None,
    cpuinfo: str = "/proc/cpuinfo",
) -> dict:
    """Where and when a result was measured: command, machine, versions, date, load.

    ``jax_backend`` and ``jax_device`` are filled only if the process imported jax already (a
    benchmark may have to set ``XLA_FLAGS`` before jax starts).
    """
    info = _cpuinfo(cpuinfo)  # read once for the model name and the vector extension
    cpu = info.get("model name") or platform.processor() or platform.machine()
    isa = vector_extension(info)
    cpus = os.cpu_count()
    jax = sys.modules.get("jax")
    backend = device = None
    if jax is not None and hasattr(jax, "default_backend"):
        backend, device = jax.default_backend(), jax.devices()[0].device_kind
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "command": command if command is not None else shlex.join(["python", *sys.argv]),
        "machine": f"{cpu}{f' ({isa})' if isa else ''}, {cpus} CPUs",
        "cpu": cpu,
        "isa": isa,
        "cpus": cpus,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "jax_backend": backend,
        "jax_device": device,
        "python": platform.python_version(),
        **versions("jax", "jaxlib", "numpy"),
        "date": now[:10],
        "started": started or now,
        "loadavg_at_start": loadavg_at_start if loadavg_at_start is not None else load_average(),
    }
