"""Makes and resumes the checkpoint fixture of tests/test_train_resume.py (run as a script).

    python tests/train_resume_run.py make   [FIXTURE]  # train STEPS_BEFORE steps, keep the checkpoint
    python tests/train_resume_run.py record [FIXTURE]  # resume it, add this machine's record to record.json
    python tests/train_resume_run.py resume [FIXTURE]  # resume it, print the digests as JSON

FIXTURE defaults to tests/fixtures/train_resume. `make` and `record` are run with the trainer as it
was before it was split into modules (commit 8806c04, `train/trainer.py` in one file); `resume`
runs the trainer of the checkout. Every mode runs `train.trainer.train_and_evaluate` under
`XLA_FLAGS` (below): XLA's own convolutions (no YNNPACK/XNNPACK), SSE4.2 code, one Eigen thread.
The test runs this script in a fresh process for that.

These flags do not make the arithmetic the same on every x86 machine: XLA:CPU's convolutions and
dots go through Eigen's contraction with oneDNN's sgemm, which picks its kernels and blocking by
the CPU at run time (measured 2026-12-07: the record of an AVX2 EPYC differs from an AVX-512
EPYC's run in the last bits of 5 of 43 scalars, and `ONEDNN_MAX_CPU_ISA` moves but does not
remove the difference; with Eigen's own kernels, `TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL=false`,
the scalars agree but the parameters do not, and Eigen blocks by the CPU's cache sizes). So each
record names its machine's arithmetic: `arithmetic()`, a digest of a small convolution, dot and
transcendental computation under the same flags and jax version. The test demands bit-identity
where the machine's arithmetic has a record, and closeness everywhere.

The training config is frozen in record.json (`config`), so that a change of the configs'
defaults does not move the digests; the images are in FIXTURE/images (PNG, which decodes the
same everywhere).

To record a machine (a new CPU, or a jax/jaxlib upgrade), use the old trainer, never the one
under test: `git worktree add /tmp/old 8806c04`, copy this script, jaxlic/provenance.py and the
fixture into it, run `record` there with this checkout's environment (`environment()`), and copy
record.json back.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "train_resume"
XLA_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_xnnpack=false "
    "--xla_cpu_max_isa=SSE4_2 --xla_cpu_multi_thread_eigen=false"
)
STEPS_BEFORE, STEPS_AFTER = 3, 3  # the checkpoint is at step 3; the resumed run goes to step 6
IMAGES = "<images>"  # placeholder for FIXTURE/images in the frozen config


def environment() -> dict:
    """The environment a fresh process needs for reproducible XLA:CPU arithmetic."""
    env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def tiny_config_dict() -> dict:
    """The config of the fixture run, as first made (tests/test_train.py's `tiny_config`)."""
    from train.configs import cheng2020

    c = cheng2020.get_config("smoke")
    c.model = "bmshj2018-hyperprior"
    c.N, c.M = 8, 8
    c.num_steps = STEPS_BEFORE + STEPS_AFTER
    c.checkpoint_every_steps = STEPS_BEFORE
    c.eval_every_steps = STEPS_BEFORE
    c.log_every_steps = 1
    c.keep_checkpoints = 1
    c.async_checkpointing = False
    c.data.source = c.data.eval_dir = IMAGES
    c.data.num_threads = 1
    c.data.num_eval_images = 1
    return c.to_dict()


def config_of(fixture: pathlib.Path, halt_after: int = 0):
    import ml_collections

    d = json.loads((fixture / "record.json").read_text())["config"]
    c = ml_collections.ConfigDict(d)
    c.data.source = c.data.eval_dir = str(fixture / "images")
    c.halt_after_steps = halt_after
    return c


def digest(tree) -> str:
    """sha256 of a pytree's leaves: path, dtype, shape and bytes of each, in path order."""
    import jax
    import numpy as np

    h = hashlib.sha256()
    for path, leaf in sorted(
        jax.tree_util.tree_leaves_with_path(tree), key=lambda kv: jax.tree_util.keystr(kv[0])
    ):
        a = np.asarray(jax.device_get(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def arithmetic() -> str:
    """A digest of this machine's XLA:CPU arithmetic under the process's flags and jax version.

    The kinds of operation the fixture's training runs (strided convolution and its transpose with
    their gradients, a dot, exp/log/erfc, sums) on fixed data: two machines with one digest compute
    the fixture's run alike, as far as this small probe can tell.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 64, 8)).astype(np.float32)
    w = (0.1 * rng.standard_normal((5, 5, 8, 8))).astype(np.float32)
    dims = ("NHWC", "HWIO", "NHWC")

    def probe(x, w):
        y = jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dims)
        z = jax.lax.conv_transpose(y, w, (2, 2), "SAME", dimension_numbers=dims)
        m = z.reshape(-1, 8) @ w[2, 2]
        return jnp.sum(jnp.log1p(jnp.exp(-(m**2))) * jax.scipy.special.erfc(m))

    value_and_grads = jax.jit(jax.value_and_grad(probe, argnums=(0, 1)))(x, w)
    return hashlib.sha256(
        f"jax {jax.__version__}|{XLA_FLAGS}|{digest(value_and_grads)}".encode()
    ).hexdigest()[:16]


def machine() -> str:
    """The machine in words (jaxlic/provenance.py's form), for the record's reader.

    Loaded by its path, as eval/harness.py does, because `record` runs in a checkout of the old
    trainer, whose eval/harness.py predates provenance.py (which is copied in).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("provenance", REPO / "jaxlic" / "provenance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.provenance(command="")["machine"]


def write_images(folder: pathlib.Path) -> None:
    """Four 80x96 PNGs with a flat red channel (40 i + 10) and a green ramp (flips show)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        img = np.zeros((80, 96, 3), np.uint8)
        img[..., 0] = 40 * i + 10
        img[..., 1] = np.arange(96, dtype=np.uint8)[None, :] * 2
        img[..., 2] = np.arange(80, dtype=np.uint8)[:, None] * 3
        Image.fromarray(img).save(folder / f"{i}.png")


def run(config, workdir: pathlib.Path) -> tuple[object, dict]:
    """`train_and_evaluate` with every scalar it writes recorded: (state, {step: {name: value}})."""
    from train import metric_writers, trainer

    scalars: dict[int, dict] = {}

    class Recorder(metric_writers.MetricWriter):
        def write_scalars(self, step, values):
            scalars.setdefault(int(step), {}).update({k: float(v) for k, v in values.items()})

    create = metric_writers.create_default_writer
    metric_writers.create_default_writer = lambda *a, **k: metric_writers.MultiWriter(
        [create(*a, **k), Recorder()]
    )
    try:
        state = trainer.train_and_evaluate(config, workdir)
    finally:
        metric_writers.create_default_writer = create
    return state, scalars


def resume(fixture: pathlib.Path) -> dict:
    """Resumes the fixture's checkpoint in a scratch workdir and runs it to the end."""
    from jaxlic import weights

    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp) / "run"
        shutil.copytree(fixture / "checkpoints", workdir / "checkpoints")
        state, scalars = run(config_of(fixture), workdir)
        exported = sorted((workdir / "export").glob("*.msgpack"))
        params, meta = weights.load(exported[0])
        deterministic = {
            step: {
                k: v for k, v in values.items() if k.startswith(("train/", "val/")) and "_per_sec" not in k
            }
            for step, values in sorted(scalars.items())
        }
        return dict(
            step=int(state.step),
            params=digest(state.params),
            opt_state=digest(state.opt_state),
            exported=[p.name for p in exported],
            exported_params=digest(params),
            exported_lmbda=meta["lmbda"],
            scalars={str(k): v for k, v in deterministic.items()},
        )


def make(fixture: pathlib.Path) -> None:
    """Trains STEPS_BEFORE steps from scratch and keeps their checkpoint as the fixture."""
    import jax

    if fixture.exists():
        shutil.rmtree(fixture)
    write_images(fixture / "images")
    (fixture / "record.json").write_text(json.dumps(dict(config=tiny_config_dict()), indent=1) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp) / "run"
        state, _ = run(config_of(fixture, halt_after=STEPS_BEFORE), workdir)
        assert int(state.step) == STEPS_BEFORE, int(state.step)
        shutil.copytree(workdir / "checkpoints", fixture / "checkpoints")
    steps = sorted(p.name for p in (fixture / "checkpoints").iterdir())
    assert steps == [str(STEPS_BEFORE)], steps
    record = json.loads((fixture / "record.json").read_text())
    record.update(
        checkpoint=dict(step=STEPS_BEFORE, params=digest(state.params), opt_state=digest(state.opt_state)),
        made_with=dict(jax=jax.__version__, xla_flags=XLA_FLAGS),
    )
    (fixture / "record.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str]) -> None:
    mode, fixture = argv[1], pathlib.Path(argv[2]) if len(argv) > 2 else FIXTURE
    if os.environ.get("XLA_FLAGS") != XLA_FLAGS:
        sys.exit("run me with XLA_FLAGS set as train_resume_run.environment() sets it")
    if mode == "make":
        make(fixture)
    elif mode == "record":
        import jax

        record = json.loads((fixture / "record.json").read_text())
        entry = dict(machine=machine(), jax=jax.__version__, arithmetic=arithmetic(), resumed=resume(fixture))
        others = [r for r in record.get("records", []) if r["arithmetic"] != entry["arithmetic"]]
        record["records"] = [*others, entry]
        (fixture / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    elif mode == "resume":
        got = dict(machine=machine(), arithmetic=arithmetic(), resumed=resume(fixture))
        print("RESUMED " + json.dumps(got))
    else:
        sys.exit(f"unknown mode {mode!r}: make, record or resume")


if __name__ == "__main__":
    main(sys.argv)
