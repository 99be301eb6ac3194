"""Where the training step's time goes: a `jax.profiler` trace of a few steps, per XLA op.

Builds the train step of a training config (default: the `cpu` campaign config of `ckbd-full`,
N = M = 64, batch 8 x 128²) exactly as `train.trainer` does, runs `--steps` steps under
`jax.profiler.trace` with XLA:CPU's per-op trace events on, and joins the trace with the
optimised HLO (dumped in the same run) to report

- time per op kind (`ynn_fusion` = convolutions and dots run by YNNPACK, transposes, pads, ...);
- every convolution and dot with its FLOPs and the GFLOP/s it ran at, grouped into forward,
  input gradient and weight gradient (the output of a weight gradient is a kernel,
  `[Cin, kh, kw, Cout]`, or its pieces from `jaxlic.layers.fastconv`), and by layer.

Run it on an otherwise idle core (`taskset -c 0`, OMP_NUM_THREADS=1) to see the step as one
training process sees it:

  OMP_NUM_THREADS=1 taskset -c 0 python -m eval.step_profile --json runs/step_profile.json
  python -m eval.step_profile --config train/configs/ckbd.py:cpu,ckbd --steps 2

It must set XLA_FLAGS before jax starts, so it is run as a script, not imported by a process
that already uses jax.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib.util
import math
import os
import pathlib
import re
import sys
import tempfile

from eval import harness

_SHAPE = re.compile(r"\w+\[([\d,]*)\]")


def _dims(shape: str) -> list[int]:
    m = _SHAPE.match(shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def load_config(spec: str):
    """`path.py[:args]` -> the config of `get_config(args)`."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("step_profile_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def computations(hlo: str) -> dict[str, str]:
    """Name -> body of every computation of an HLO module's text."""
    return {
        m.group(1): m.group(2) for m in re.finditer(r"^%?([\w.-]+) \([^\n]*\{\n(.*?)^\}", hlo, re.M | re.S)
    }


def flops(body: str, context: str | None = None) -> float:
    """FLOPs of the convolutions and dots in an HLO computation body (2 per multiply-add); operand
    shapes are looked up in `context` (default: the body)."""
    shapes = dict(re.findall(r"^\s*(?:ROOT )?(%[\w.-]+) = (\w+\[[\d,]*\])", context or body, re.M))
    total = 0.0
    for line in body.splitlines():
        m = re.search(r"= (\w+\[[\d,]*\])\S* convolution\((%[\w.-]+), (%[\w.-]+)\)", line)
        if m:
            window = re.search(r"window=\{size=([\dx]+)", line)
            labels = re.search(r"dim_labels=\w+_(\w+)->", line)
            kernel = _dims(shapes.get(m.group(3), ""))
            if window and labels and kernel:
                taps = math.prod(int(k) for k in window.group(1).split("x"))
                cin = kernel[labels.group(1).index("i")]
                total += 2.0 * math.prod(_dims(m.group(1))) * taps * cin
        m = re.search(
            r"= (\w+\[[\d,]*\])\S* dot\((%[\w.-]+), (%[\w.-]+)\).*?lhs_contracting_dims=\{([\d,]*)\}", line
        )
        if m:
            lhs = _dims(shapes.get(m.group(2), ""))
            if lhs:
                k = math.prod(lhs[int(c)] for c in m.group(4).split(",") if c)
                total += 2.0 * math.prod(_dims(m.group(1))) * k
    return total


def op_table(hlo: str) -> dict[str, dict]:
    """Top-level instruction name -> {shape, flops, layer} for fusions, convolutions and dots."""
    comps = computations(hlo)
    table = {}
    for m in re.finditer(
        r"^\s*(?:ROOT )?%([\w.-]+) = (\w+\[[\d,]*\])\S* (fusion|convolution|dot)\((.*)$", hlo, re.M
    ):
        name, shape, kind, rest = m.groups()
        calls = re.search(r"calls=%([\w.-]+)", rest)
        body, context = (comps.get(calls.group(1), ""), None) if calls else (m.group(0), hlo)
        op = re.search(r'op_name="([^"]+)"', rest)
        table[name] = {"shape": shape, "flops": flops(body, context), "layer": op.group(1) if op else "?"}
    return table


def role(entry: dict) -> str:
    """forward, input_grad or weight_grad of a convolution/dot, from its op name and shape."""
    d = _dims(entry["shape"])
    backward = "transpose(" in entry["layer"] or entry["layer"] == "?"
    if backward and len(d) == 4 and d[1] in (1, 3, 5) and d[2] == d[1]:  # [Cin, kh, kw, Cout]
        return "weight_grad"
    return "input_grad" if backward else "forward"


def layer_name(op_name: str) -> str:
    """`Compressor.synthesis/g_s_5/upsample/conv` out of a traced op name."""
    parts = [p for p in op_name.split("/") if p and not p.startswith(("jit(", "transpose(", "jvp("))]
    start = next((i for i, p in enumerate(parts) if p.startswith("Compressor")), 0)
    return "/".join(parts[start:-1]) or op_name


def profile(config, steps: int, workdir: str) -> dict:
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top

    from train import trainer  # pylint: disable=g-import-not-at-top

    spec, state, step, key = trainer.setup_train_step(config)
    shape = (config.batch_size, config.data.crop_size, config.data.crop_size, 3)
    batch = jax.device_put(np.random.default_rng(0).random(shape, np.float32))
    for _ in range(2):  # compile and warm up
        state, metrics = step(state, batch, key)
        jax.block_until_ready(metrics)

    def one():
        nonlocal state
        state, metrics = step(state, batch, key)
        jax.block_until_ready(metrics)

    jax.profiler.start_trace(os.path.join(workdir, "trace"))
    _, times = harness.repeat(one, steps)
    jax.profiler.stop_trace()

    trace = sorted(glob.glob(os.path.join(workdir, "trace", "**", "*.xplane.pb"), recursive=True))[-1]
    per_op = collections.Counter()
    for plane in ProfileData.from_file(trace).planes:
        for line in plane.lines:
            if line.name.startswith("tf_XLAEigen"):  # XLA:CPU's per-op events
                for event in line.events:
                    per_op[event.name] += event.duration_ns / 1e6 / steps
    dumps = glob.glob(os.path.join(workdir, "dump", "*jit_train_step*after_optimizations.txt"))
    table = op_table(pathlib.Path(dumps[0]).read_text()) if dumps else {}

    kinds = collections.Counter()
    for name, ms in per_op.items():
        if name.startswith("ThunkExecutor"):
            continue
        kinds[re.sub(r"\.\d+$", "", name)] += ms
    roles = collections.defaultdict(lambda: {"ms": 0.0, "gflop": 0.0})
    layers = collections.defaultdict(lambda: {"ms": 0.0, "gflop": 0.0, "ops": 0})
    for name, ms in per_op.items():
        entry = table.get(name)
        if not entry or not entry["flops"]:
            continue
        r = role(entry)
        roles[r]["ms"] += ms
        roles[r]["gflop"] += entry["flops"] / 1e9
        k = f"{r} {layer_name(entry['layer'])} {entry['shape']}"
        layers[k]["ms"] += ms
        layers[k]["gflop"] += entry["flops"] / 1e9
        layers[k]["ops"] += 1
    for d in list(roles.values()) + list(layers.values()):
        d["gflop_per_s"] = d["gflop"] / d["ms"] * 1e3 if d["ms"] else None
    ops_ms = sum(kinds.values())
    return {
        "model": spec.name,
        "batch": list(shape),
        "step_s": harness.median(times),
        "step_times_s": times,
        "profiled_ops_ms_per_step": ops_ms,
        "by_kind_ms": dict(kinds.most_common()),
        "conv_dot_by_role": dict(roles),
        "conv_dot_by_layer": dict(sorted(layers.items(), key=lambda kv: -kv[1]["ms"])),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="train/configs/ckbd.py:cpu", help="training config, path.py[:args]")
    p.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up steps)")
    p.add_argument("--top", type=int, default=25, help="layers printed")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args(argv)
    run = harness.Run("eval.step_profile", argv)
    if "jax" in sys.modules:
        sys.exit("error: eval.step_profile must start jax itself (it sets XLA_FLAGS); run it as a script")
    with tempfile.TemporaryDirectory(prefix="jaxlic-step-profile-") as workdir:
        flags = f"--xla_cpu_enable_xprof_traceme=true --xla_dump_to={workdir}/dump --xla_dump_hlo_as_text"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        result = profile(load_config(args.config), args.steps, workdir)
    result["config"] = args.config
    result["provenance"] = run.provenance()
    total = result["profiled_ops_ms_per_step"]
    print(
        f"{result['model']} {result['batch']}: step {result['step_s']:.3f} s (median of {args.steps}), ops {total:.0f} ms"
    )
    print("time per op kind (ms/step):")
    for k, ms in list(result["by_kind_ms"].items())[:10]:
        print(f"  {ms:8.1f}  {100 * ms / total:5.1f}%  {k}")
    print("convolutions and dots by role:")
    for r, d in result["conv_dot_by_role"].items():
        print(f"  {r:12s} {d['ms']:8.1f} ms  {d['gflop']:7.2f} GFLOP  {d['gflop_per_s'] or 0:6.0f} GFLOP/s")
    print(f"slowest layers (top {args.top}):")
    for k, d in list(result["conv_dot_by_layer"].items())[: args.top]:
        print(
            f"  {d['ms']:7.1f} ms  {d['gflop']:6.2f} GFLOP  {d['gflop_per_s'] or 0:5.0f} GFLOP/s  x{d['ops']:<3d} {k}"
        )
    if args.json:
        harness.write_json(args.json, result)


if __name__ == "__main__":
    main()
