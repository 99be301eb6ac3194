"""Do streams decode under another convolution implementation? (issue "Portable bitstreams")

    python -m eval.portability [--kodak ../shared/data/kodak] [--json results/portability.json]
        [--md results/portability.md]

A stream must decode on any machine: another CPU, another jaxlib, a GPU. Each of those picks other
convolution kernels, so the float networks that derive the entropy parameters (h_s, the context
model, the entropy-parameter network) give other last bits, and a float entropy path's decoder
may then draw other probabilities than its encoder: an error, or silently another image. This
reproduces "another machine" on this one with XLA:CPU configurations (`CONFIGS`), each in a
fresh Python process with its own environment (``XLA_FLAGS`` and others):

- ``default``: XLA's own choice (YNNPACK / XNNPACK convolutions on x86);
- ``ynn-off``: YNNPACK and XNNPACK off, so XLA's own (Eigen) convolutions run;
- ``fastmath-sse42``: fast math and the SSE4.2 instruction set only (no AVX, no FMA);
- ``ynn-off-sse41``: ``ynn-off`` with oneDNN held to SSE4.1 (``ONEDNN_MAX_CPU_ISA``): XLA's own
  convolutions and dots go through Eigen's contraction, whose kernel is oneDNN's sgemm, and that
  picks its code by the CPU at run time; this is ``ynn-off``'s sgemm as a CPU without AVX runs
  it, a stand-in for ``ynn-off`` on an AVX2 against an AVX-512 machine.

(``--xla_cpu_max_isa``, fast math or one thread alone leave YNNPACK's kernels, which dispatch on
the CPU at run time, unchanged; only ``ynn-off`` swaps the convolutions.) The benchmark runs
every configuration unless ``--configs`` names some; tests/test_cross_implementation.py runs
the first three.

Under every configuration one process encodes every job and writes its stream, with the
integer symbols it coded (`symbol_digest`: z's symbols and ``round(y_hat * 64)``); then under
every configuration one process decodes every stream written under the *other* ones, as the
CLI does (`jaxlic.zoo.for_stream`: the shipped or archived weights the stream names), and says
per stream whether decoding raised, whether the stream's symbol check passed, and the digest of
the symbols it decoded. `outcome` names the result: decoded OK, decode error, symbol check
failed, or silent mismatch (the decoder's symbols differ from the encoder's and nothing said
so: a version 1 stream, which has no symbol check).

The benchmark runs the shipped (exact) models against their float originals
(`jaxlic/pretrained/archive/`) on four Kodak photos: the default ckbd-full-vr at q = 4 and the
fixed-rate ckbd-full q2. The float streams go both as format 2 (with the symbol check, as the
float path writes them now) and as format 1 (the fields ``weights`` and ``symbols`` stripped:
the streams of the releases before the check). It prints a table and writes a JSON record with
its provenance. tests/test_cross_implementation.py runs the same machinery (`run_matrix`) on
the exact models only, and asserts that every cross decode gives the encoder's symbols.

The processes run as ``python -m eval.portability worker encode|decode ...`` (`worker_main`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import traceback

import numpy as np

from eval import harness

ROOT = pathlib.Path(__file__).resolve().parent.parent

_YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_xnnpack=false"
#: XLA:CPU configurations, by name: the environment variables each sets (none: XLA's defaults).
CONFIGS = {
    "default": {},
    "ynn-off": {"XLA_FLAGS": _YNN_OFF},
    "fastmath-sse42": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true --xla_cpu_max_isa=SSE4_2"},
    "ynn-off-sse41": {"XLA_FLAGS": _YNN_OFF, "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
#: Variables a configuration may set; the benchmark's own environment passes none of them on.
_CONFIG_VARS = ("XLA_", "ONEDNN_", "DNNL_", "TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL")


def select(names) -> dict:
    """The configurations of `names` (an iterable of keys of `CONFIGS`), in that order."""
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}: {', '.join(CONFIGS)}")
    return {n: CONFIGS[n] for n in names}


def describe(settings: dict) -> str:
    """A configuration's environment as a shell would set it ("no settings" for none)."""
    return (
        " ".join(f"{k}={v!r}" if " " in v or not v else f"{k}={v}" for k, v in settings.items())
        or "no settings"
    )


KODAK = ROOT.parent / "shared" / "data" / "kodak"
IMAGES = ("kodim01", "kodim04", "kodim13", "kodim23")
OUTCOMES = ("decoded OK", "symbol check failed", "silent mismatch", "decode error")

# ------------------------------------------------------------------------------------- jobs
#
# A job is a JSON object: one stream to write under every configuration.
#   id       unique name ("vr-exact/kodim01/q4"); `kind` groups jobs in the table
#   weights  the encoder's weights file; None: the shipped weights of `model` at `quality`
#   model, quality
#   image    an image file to compress; or
#   latents  {"seed", "y_shape", "z_shape"}: drawn latents coded by the model's host coder (tiny
#            random models, whose analysis gives latents that all round to zero)
#   rate     a variable-rate model's rate parameter (None: fixed rate)
#   version  1: strip the stream's weights fingerprint and symbol check and write format 1
#   decoder  "cli": decode with the weights the stream names (`zoo.for_stream`, as the CLI);
#            "weights": with the job's weights file (the CLI's --weights FILE)
#   pixels   False: decode the latents only (`Codec.decompress` up to and with its symbol
#            check, the synthesis left out: it is float and does not touch the bitstream)


def job(
    id: str,
    kind: str,
    *,
    model: str,
    quality: int = 0,
    weights=None,
    image=None,
    latents=None,
    rate=None,
    version: int = 2,
    decoder: str = "cli",
    pixels: bool = True,
) -> dict:
    """One job (see above); paths become strings."""
    return dict(
        id=id,
        kind=kind,
        model=model,
        quality=quality,
        weights=None if weights is None else str(weights),
        image=None if image is None else str(image),
        latents=latents,
        rate=rate,
        version=version,
        decoder=decoder,
        pixels=pixels,
    )


def drawn_latents(seed: int, y_shape, z_shape) -> tuple[np.ndarray, np.ndarray]:
    """Latents y, z with varied per-channel spreads and a few values that need escapes."""
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.normal(0, 1, y_shape[-1]))
    y = (rng.normal(size=y_shape) * 4 * spread).astype(np.float32)
    z = (rng.normal(size=z_shape) * 3).astype(np.float32)
    y.flat[0], y.flat[y.size // 2 + 1], y.flat[-1] = 300.0, -3000.0, 2500.0
    z.flat[0], z.flat[-1] = -200.0, 500.0
    return y, z


def symbol_arrays(z_sym, y_hat) -> dict[str, np.ndarray]:
    """The integer symbols of decoded latents: z's symbols and ``round(y_hat * 64)`` (int32).

    On the exact path y_hat lies on a 1/64 grid (integer symbol plus mean64 / 64), so these
    integers are the latents exactly; on the float path they are its symbols up to the means'
    last bits.
    """
    y64 = np.round(np.asarray(y_hat, np.float64) * 64)
    return {"z": np.asarray(z_sym, np.int32), "y64": np.clip(y64, -(2**31), 2**31 - 1).astype(np.int32)}


def symbol_digest(symbols: dict[str, np.ndarray]) -> str:
    """SHA-256 (16 hex digits) of `symbol_arrays`' integers."""
    h = hashlib.sha256()
    for key in ("z", "y64"):
        h.update(np.ascontiguousarray(symbols[key], "<i4").tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------- worker


@contextlib.contextmanager
def captured_symbols():
    """Within it, `jaxlic.latent.host.symbols_crc` records what it sees: encoder and decoder
    both call it with (z's symbols, y_hat), the decoder before its symbol check can raise.
    Yields the list of `symbol_arrays` of the calls, the last one last."""
    from jaxlic.latent import host

    seen, original = [], host.symbols_crc

    def capture(z_sym, y_hat):
        seen.append(symbol_arrays(z_sym, y_hat))
        return original(z_sym, y_hat)

    host.symbols_crc = capture
    try:
        yield seen
    finally:
        host.symbols_crc = original


@contextlib.contextmanager
def _without_synthesis(codec):
    """Within it, `codec` decodes the latents (range decoding, the symbol check) and returns a
    black image: its synthesis is left out."""

    def black(y_hat, q=None):
        return np.zeros((1, 16 * y_hat.shape[1], 16 * y_hat.shape[2], 3), np.float32)

    codec.synthesize = black
    try:
        yield
    finally:
        del codec.synthesize


def _read_image(path: str) -> np.ndarray:
    from jaxlic.image_io import read_image

    return read_image(path)[0]


def _as_version_1(data: bytes) -> bytes:
    """A format 1 stream of a float stream: no weights fingerprint, no symbol check."""
    from jaxlic.coding import container

    header, sections = container.unpack(data)
    drop = (container.WEIGHTS_KEY, container.SYMBOLS_KEY, container.EXACT_KEY)
    extra = {k: v for k, v in header.extra.items() if k not in drop}
    return container.pack(dataclasses.replace(header, extra=extra, version=1), sections)


def _encode_latents(codec, latents: dict) -> bytes:
    """A stream of drawn latents through the codec's host coder (header as `Codec.compress`)."""
    from jaxlic.coding import container

    y, z = drawn_latents(latents["seed"], latents["y_shape"], latents["z_shape"])
    sections, check = codec._coder.encode(y, z, {"network_s": 0.0, "coding_s": 0.0})
    extra = {container.WEIGHTS_KEY: codec.weights_id, container.SYMBOLS_KEY: check}
    if codec.exact:
        extra[container.EXACT_KEY] = 1
    h, w = 16 * y.shape[1], 16 * y.shape[2]
    return container.pack(container.Header(codec.name, codec.quality, h, w, extra), sections)


def _encode_all(jobs: list[dict], folder: pathlib.Path, config: str) -> list[dict]:
    with captured_symbols() as seen:
        return _encode(jobs, folder, config, seen)


def _encode(jobs, folder, config, seen) -> list[dict]:
    from jaxlic import zoo

    codecs, done, records = {}, {}, []
    for j in jobs:
        rec = {"id": j["id"], "config": config}
        try:
            key = (j["weights"], j["model"], j["quality"])
            if key not in codecs:  # one Codec per weights: its jitted functions compile once
                codecs[key] = (
                    zoo.load(weights=j["weights"]) if j["weights"] else zoo.load(j["model"], j["quality"])
                )
            codec = codecs[key]
            source = (key, j["image"], json.dumps(j["latents"]), j["rate"])
            took = harness.Timer()
            if source not in done:  # a format 1 copy of a stream reuses its encoding
                seen.clear()
                if j["latents"]:
                    data = _encode_latents(codec, j["latents"])
                else:
                    rate = {} if j["rate"] is None else {"quality": j["rate"]}
                    data = codec.compress(_read_image(j["image"]), **rate)
                done[source] = data, seen[-1]
            data, symbols = done[source]
            if j["version"] == 1:
                data = _as_version_1(data)
            stem = f"{j['id'].replace('/', '_')}.{config}"
            (folder / f"{stem}.jlic").write_bytes(data)
            np.savez(folder / f"{stem}.npz", **symbols)
            rec.update(
                stream=f"{stem}.jlic",
                symbols=f"{stem}.npz",
                bytes=len(data),
                digest=symbol_digest(symbols),
                encode_s=round(took.elapsed(), 2),
            )
        except Exception as e:
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc()
        print(f"[encode {config}] {j['id']}: {rec.get('error') or rec['bytes']}", flush=True)
        records.append(rec)
    return records


def _decode_all(items: list[dict], folder: pathlib.Path, config: str) -> list[dict]:
    """Decodes `items` ({"job", "written", "stream", "symbols"}) as the job's decoder would."""
    with captured_symbols() as seen:
        return _decode(items, folder, config, seen)


def _decode(items, folder, config, seen) -> list[dict]:
    from jaxlic import zoo
    from jaxlic.coding import container
    from jaxlic.errors import JaxlicError
    from jaxlic.metrics import psnr

    base, codecs, records = {}, {}, []
    for it in items:
        j = it["job"]
        rec = {"id": j["id"], "written": it["written"], "read": config}
        data = (folder / it["stream"]).read_bytes()
        took = harness.Timer()
        seen.clear()
        try:
            header, _ = container.unpack(data)
            if j["decoder"] == "weights":
                key = ("weights", j["weights"])
                if key not in codecs:
                    codecs[key] = zoo.load(weights=j["weights"])
            else:  # the CLI's way: the stream's model name, then the weights it names
                key = (header.model, header.quality, header.extra.get(container.WEIGHTS_KEY))
                if key not in codecs:
                    name = (header.model, header.quality)
                    if name not in base:
                        base[name] = zoo.load(*name)
                    codecs[key] = zoo.for_stream(header, base[name])
            codec = codecs[key]
            rec["exact"] = bool(codec.exact)
            try:
                with contextlib.nullcontext() if j["pixels"] else _without_synthesis(codec):
                    img = codec.decompress(data)
                rec["status"] = "ok"
                rec["check"] = "passed" if header.has_symbol_check else "none"
                if j["image"] and j["pixels"]:
                    rec["psnr"] = round(float(psnr(_read_image(j["image"]), img)), 4)
            except JaxlicError as e:
                failed = "symbol check" in str(e)
                rec["status"] = "check_failed" if failed else "error"
                rec["check"] = "failed" if failed else "n/a"
                rec["error"] = f"{type(e).__name__}: {e}"
        except Exception as e:
            rec.update(status="error", check="n/a", error=f"{type(e).__name__}: {e}")
            rec["traceback"] = traceback.format_exc()
        symbols = seen[-1] if seen else None
        if symbols is not None:
            rec["digest"] = symbol_digest(symbols)
            want = np.load(folder / it["symbols"])
            if all(want[k].shape == symbols[k].shape for k in symbols):
                rec["symbols_differ"] = int(sum(np.count_nonzero(want[k] != symbols[k]) for k in symbols))
            rec["symbols_total"] = int(sum(symbols[k].size for k in symbols))
        rec["decode_s"] = round(took.elapsed(), 2)
        print(f"[decode {config}] {j['id']} from {it['written']}: {rec['status']}", flush=True)
        records.append(rec)
    return records


def worker_main(argv) -> int:
    """``worker encode JOBS.json DIR CONFIG`` or ``worker decode ITEMS.json DIR CONFIG``:
    writes ``DIR/<mode>.<CONFIG>.json`` (the records)."""
    mode, work, folder, config = argv
    folder = pathlib.Path(folder)
    todo = json.loads(pathlib.Path(work).read_text())
    run = _encode_all if mode == "encode" else _decode_all
    process = harness.Timer()  # CPU: since the process started (imports included), as before
    records = run(todo, folder, config)
    seconds = {"wall_s": round(process.elapsed(), 1), "cpu_s": round(harness.cpu_time(), 1)}
    (folder / f"{mode}.{config}.json").write_text(json.dumps({"records": records, **seconds}, indent=1))
    return 0


# ----------------------------------------------------------------------------------- matrix


def config_env(settings: dict, cache: pathlib.Path) -> dict:
    """The environment of a process under a configuration's `settings`: nothing else of XLA's or
    oneDNN's inherited (no test-suite flags), and the compilation cache folder `cache` of this
    configuration alone.

    The encoder and the decoder of a configuration compile the same hyper-synthesis and
    entropy-parameter functions; the decoder takes them from the encoder's cache. JAX's cache
    key holds the XLA flags, and each configuration has its own folder besides.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith((*_CONFIG_VARS, "JAX_PERSISTENT_CACHE"))}
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["JAXLIC_NO_COMPILE_CACHE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(settings)
    return env


def _run_processes(mode: str, work: dict[str, pathlib.Path], folder, configs, timeout, log):
    """One worker process per configuration, all at once; raises when one fails."""
    procs = {}
    for config, path in work.items():
        cmd = [sys.executable, "-m", "eval.portability", "worker", mode, str(path), str(folder), config]
        err = open(folder / f"{mode}.{config}.log", "w")  # noqa: SIM115 (closed below)
        env = config_env(configs[config], folder / "xla-cache" / config)
        procs[config] = (subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=err, stderr=err), err)
    failed = {}
    for config, (p, err) in procs.items():
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        err.close()
        if p.returncode:
            tail = (folder / f"{mode}.{config}.log").read_text()[-3000:]
            failed[config] = f"exit {p.returncode}:\n{tail}"
    if failed:
        raise RuntimeError(f"{mode} processes failed: {json.dumps(failed, indent=1)}")
    out = {c: json.loads((folder / f"{mode}.{c}.json").read_text()) for c in work}
    log(f"{mode}: " + ", ".join(f"{c} {o['wall_s']:.0f} s ({o['cpu_s']:.0f} s CPU)" for c, o in out.items()))
    return out


def run_matrix(jobs: list[dict], folder, configs: dict | None = None, timeout=3600, log=print) -> dict:
    """Encodes `jobs` under every configuration, decodes each stream under every other one.

    Returns ``{"encoded": {config: [record]}, "decoded": [record], "seconds": {...}}`` (wall and
    CPU seconds of every process, wall seconds of each phase); an encode record holds the
    stream's `bytes` and `digest` (or an `error`), a decode record `id`, `written`, `read`,
    `status` ("ok", "check_failed", "error"), `check` ("passed", "failed", "none", "n/a"),
    `digest`, `symbols_differ` (of `symbols_total`), `error`, `psnr` (image jobs).
    """
    configs = CONFIGS if configs is None else configs
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jobs.json").write_text(json.dumps(jobs, indent=1))
    phase = harness.Timer()
    enc = _run_processes("encode", {c: folder / "jobs.json" for c in configs}, folder, configs, timeout, log)
    encoded = {c: o["records"] for c, o in enc.items()}
    seconds = {f"encode {c}": {k: o[k] for k in ("wall_s", "cpu_s")} for c, o in enc.items()}
    seconds["encode"] = round(phase.elapsed(), 1)
    by_id = {j["id"]: j for j in jobs}
    work = {}
    for reader in configs:
        items = [
            {"job": by_id[r["id"]], "written": writer, "stream": r["stream"], "symbols": r["symbols"]}
            for writer in configs
            if writer != reader
            for r in encoded[writer]
            if "error" not in r
        ]
        work[reader] = folder / f"decode-items.{reader}.json"
        work[reader].write_text(json.dumps(items, indent=1))
    phase.restart()
    dec = _run_processes("decode", work, folder, configs, timeout, log)
    seconds.update({f"decode {c}": {k: o[k] for k in ("wall_s", "cpu_s")} for c, o in dec.items()})
    seconds["decode"] = round(phase.elapsed(), 1)
    decoded = [r for c in configs for r in dec[c]["records"]]
    return {"encoded": encoded, "decoded": decoded, "seconds": seconds}


def outcome(decoded: dict, encoded: dict) -> str:
    """One of `OUTCOMES` for a decode record and the encoder's record of its stream."""
    if decoded["status"] == "error":
        return "decode error"
    if decoded["status"] == "check_failed":
        return "symbol check failed"
    if decoded.get("digest") != encoded["digest"]:
        return "silent mismatch"
    return "decoded OK"


def outcomes(result: dict) -> list[dict]:
    """The decode records of `run_matrix`'s result, each with its `outcome` and `encoder_digest`."""
    enc = {(r["id"], c): r for c, recs in result["encoded"].items() for r in recs}
    out = []
    for d in result["decoded"]:
        e = enc[(d["id"], d["written"])]
        out.append({**d, "outcome": outcome(d, e), "encoder_digest": e["digest"]})
    return out


# -------------------------------------------------------------------------------- benchmark


def benchmark_jobs(kodak: pathlib.Path, images=IMAGES, rate: float = 4.0) -> list[dict]:
    """The shipped exact models and their float originals (format 2 and format 1 streams)."""
    from jaxlic import zoo

    legacy = json.loads((zoo.ARCHIVE_DIR / "LEGACY.json").read_text())
    models = [("vr", "ckbd-full-vr", 0, rate), ("q2", "ckbd-full", 2, None)]
    jobs = []
    for short, name, quality, q in models:
        float_weights = zoo.ARCHIVE_DIR / legacy[f"{name}-q{quality}"]
        for image in images:
            path = kodak / f"{image}.png"
            tail = f"{image}" + ("" if q is None else f"/q{q:g}")
            common = dict(model=name, quality=quality, image=path, rate=q)
            jobs.append(job(f"{short}-exact/{tail}", f"{name} exact (v2)", **common))
            for version in (2, 1):
                jobs.append(
                    job(
                        f"{short}-float-v{version}/{tail}",
                        f"{name} float (v{version})",
                        weights=float_weights,
                        version=version,
                        **common,
                    )
                )
    return jobs


def table(rows: list[dict], jobs: list[dict]) -> str:
    """A markdown table: per (model kind, written under, read under) how the streams decoded."""
    kind = {j["id"]: j["kind"] for j in jobs}
    groups = collections.defaultdict(list)
    for r in rows:
        groups[(kind[r["id"]], r["written"], r["read"])].append(r)
    lines = [
        "| model (stream format) | written under | read under | "
        + " | ".join(OUTCOMES)
        + " | PSNR (dB) | note |",
        "|---|---|---|" + "---:|" * len(OUTCOMES) + "---|---|",
    ]
    kinds, configs = list(dict.fromkeys(j["kind"] for j in jobs)), list(CONFIGS)  # CONFIGS' order
    order = lambda key: (kinds.index(key[0]), configs.index(key[1]), configs.index(key[2]))
    for (k, w, rd), rs in sorted(groups.items(), key=lambda item: order(item[0])):
        counts = collections.Counter(r["outcome"] for r in rs)
        psnrs = [r["psnr"] for r in rs if "psnr" in r]
        psnr_txt = f"{min(psnrs):.2f}-{max(psnrs):.2f}" if psnrs else "-"
        notes = sorted({": ".join(r["error"].split(": ")[:2]) for r in rs if r["outcome"] == "decode error"})
        wrong = [r for r in rs if r["outcome"] in ("silent mismatch", "symbol check failed")]
        if wrong:
            differ = ", ".join(f"{r.get('symbols_differ', '?')}/{r.get('symbols_total', '?')}" for r in wrong)
            notes.append(f"symbols differing: {differ}")
        lines.append(
            f"| {k} | {w} | {rd} | "
            + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES)
            + f" | {psnr_txt} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict], jobs: list[dict]) -> str:
    """A markdown table: per model kind, the outcomes of all its cross decodes."""
    kind = {j["id"]: j["kind"] for j in jobs}
    counts = collections.defaultdict(collections.Counter)
    for r in rows:
        counts[kind[r["id"]]][r["outcome"]] += 1
    lines = [
        "| model (stream format) | cross decodes | " + " | ".join(OUTCOMES) + " |",
        "|---|---:|" + "---:|" * len(OUTCOMES),
    ]
    for k in dict.fromkeys(j["kind"] for j in jobs):
        c = counts[k]
        lines.append(f"| {k} | {sum(c.values())} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES) + " |")
    return "\n".join(lines)


def markdown(record: dict, json_path: pathlib.Path) -> str:
    """The benchmark's page: where it ran, the configurations, the table, the seconds."""
    prov, secs = record["provenance"], record["seconds"]
    configs = "\n".join(f"- `{c}`: `{describe(f)}`" for c, f in record["configs"].items())
    procs = ", ".join(
        f"{k} {v['wall_s']:.0f} s ({v['cpu_s']:.0f} s CPU)" for k, v in secs.items() if isinstance(v, dict)
    )
    try:
        json_name = json_path.resolve().relative_to(ROOT)
    except ValueError:
        json_name = json_path
    return f"""# Portability of streams across convolution implementations

`{prov["command"]}` ([eval/portability.py](../eval/portability.py)) on {prov["machine"]}, {prov["date"]}
(jax {prov["jax"]}, jaxlib {prov["jaxlib"]}, Python {prov["python"]}, backend {prov["jax_backend"]}); record: `{json_name}`.

Each stream is written under one XLA:CPU configuration (a fresh process with its settings) and
read under each other one, as the CLI reads it (`jaxlic.zoo.for_stream`):

{configs}

Images: {", ".join(record["images"])} (Kodak, full size); ckbd-full-vr at q = {record["rate"]:g}, ckbd-full q2.
The exact models are the shipped ones; the float ones their originals (`jaxlic/pretrained/archive/`),
as format 2 streams (with the symbol check) and as format 1 streams (the `weights` and `symbols`
fields stripped: the streams of the releases before the check). Counts are streams (one per image).

- *decoded OK*: the decoder's integer symbols (z's symbols, `round(y_hat * 64)`) are the encoder's;
- *symbol check failed*: `BitstreamError`: the stream's CRC of its latents does not match;
- *silent mismatch*: decoded without an error to other symbols (a format 1 stream has no check);
- *decode error*: any other error.

{record["summary"]}

Per configuration pair:

{record["table"]}

Seconds: {secs["total"]:.0f} in all; {procs} (each configuration's processes ran at once, the
machine shared with other work).
"""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        return worker_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kodak", type=pathlib.Path, default=KODAK)
    p.add_argument("--images", default=",".join(IMAGES))
    p.add_argument("--rate", type=float, default=4.0, help="the variable-rate model's rate parameter q")
    p.add_argument("--work", type=pathlib.Path, default=ROOT / "runs" / "portability")
    p.add_argument("--json", type=pathlib.Path, default=ROOT / "results" / "portability.json")
    p.add_argument("--md", type=pathlib.Path, default=ROOT / "results" / "portability.md")
    p.add_argument("--configs", default=",".join(CONFIGS), help="configurations to run (default: all)")
    args = p.parse_args(argv)
    try:
        configs = select(args.configs.split(","))
    except ValueError as e:
        p.error(str(e))
    run = harness.Run("eval.portability", argv)
    jobs = benchmark_jobs(args.kodak, args.images.split(","), args.rate)
    total = harness.Timer()
    shutil.rmtree(args.work, ignore_errors=True)  # no streams or compiled code of an earlier run
    result = run_matrix(jobs, args.work, configs)
    rows = outcomes(result)
    text = table(rows, jobs)
    print(summary(rows, jobs), text, sep="\n\n")
    record = {
        "provenance": run.provenance(),
        "configs": configs,
        "images": args.images.split(","),
        "rate": args.rate,
        "seconds": {"total": round(total.elapsed(), 1), **result["seconds"]},
        "summary": summary(rows, jobs),
        "table": text,
        "jobs": jobs,
        "encoded": {
            c: [{k: v for k, v in r.items() if k != "traceback"} for r in rs]
            for c, rs in result["encoded"].items()
        },
        "decoded": [{k: v for k, v in r.items() if k != "traceback"} for r in rows],
    }
    harness.write_json(args.json, record, indent=1)
    args.md.write_text(markdown(record, args.json))
    print(f"wrote {args.json} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
