"""The ``jaxlic`` command line: compress, decompress, inspect and evaluate.

Subcommands::

    jaxlic demo [--sample astronaut] [--model ckbd-full-vr] [--quality Q | --rate R | --target-bpp B | --target-size BYTES]
    jaxlic compress IN OUT [--model ckbd-full-vr] [--quality Q | --rate R | --target-bpp B | --target-size BYTES]
                           [--weights FILE] [--force] [--timings]
    jaxlic compress IN... --out-dir DIR [same options]      # files, folders, globs: DIR/<name>.jlic
    jaxlic decompress IN OUT [--weights FILE] [--force] [--timings]
    jaxlic decompress IN... --out-dir DIR [same options]    # DIR/<name>.png
    jaxlic info FILE.jlic
    jaxlic eval DIR [--models ...] [--qualities ... | --rates ...] [--codecs jpeg,webp,...] --out results/NAME
                    [--report DIR [--report-bpp B]]
    jaxlic compare per_image_*.csv [--json FILE]                              # models against codecs
    jaxlic compare per_image_A.csv --against per_image_B.csv [--at-bpp 0.1,0.2]   # model A against model B
    jaxlic compare IMAGES... [--model A] [--weights FA...] --against-model B | --against-weights FB...
    jaxlic bdrate ANCHOR.json TEST.json [--bpp 0.15]
    jaxlic server start|stop|status|run  # a resident process for later compress/decompress calls
    jaxlic convert-compressai ...

``--quality`` is the integer quality index of a fixed-rate model (which weights file). ``--rate``
is the continuous rate parameter of a variable-rate model (``<name>-vr``, gain units of Cui et al.
2021), which also takes a target size instead (``--target-bpp`` / ``--target-size``, found by
searching the rate parameter with the real range coder; an unreachable target gives the nearest
reachable stream and a note on stderr). ``--quality`` given to a variable-rate model is a
deprecated alias of ``--rate`` (a note on stderr says so). The codec (``jaxlic.rdcodec.RDCodec``)
validates every rate and target; what it refuses is a usage error, before anything is written.

``jaxlic compare`` compares per image at matched rate (``jaxlic.evaluation.matched``): the models
of per-image files against the classical codecs in them, or (``--against``) against a baseline
model's per-image file; or it first codes images with two models (``--against-model`` /
``--against-weights`` for the baseline) and compares those.

In the single-file forms ``-`` is stdin or stdout (as in cwebp and cjxl): ``jaxlic compress - out.jlic
< in.png``, ``jaxlic compress in.png - > out.jlic``, ``jaxlic decompress - - < a.jlic > a.png``; the
report then goes to stderr. With ``--out-dir`` one process codes every input with one codec object
(weights read once, each network compiled or loaded once per padded size, ``jaxlic.batch``); a
progress bar with an ETA on a terminal, one line per file when piped; a file that fails is one
``jaxlic: error: FILE: ...`` line, the others finish, and the call ends with a summary and exit
status 1. When a resident server runs (``jaxlic server start``, or ``JAXLIC_SERVER=1`` to start
one when needed; ``jaxlic.server``), ``compress`` and ``decompress`` hand their call to it and
print, write and exit the same, without JAX's start-up.

A mistake the user can make (missing file, not an image, corrupted stream, unknown model,
existing output) is reported as one line ``jaxlic: error: ...`` on stderr with exit status 1;
usage errors exit with 2. Outputs are written atomically, so a failure never leaves a partial
file. The model zoo (JAX) and the evaluation code are imported only by the subcommands that
need them; those turn on the compile cache and the stored executables of ``jaxlic.warm_start``
(``jaxlic.compile_cache.enable``), and ``--timings`` prints where a call's time went.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time

from jaxlic import batch, compile_cache
from jaxlic.errors import BitstreamError, JaxlicError, ModelError
from jaxlic.models.registry import DEFAULT_MODEL  # jax-free: the CLI starts without importing jax

PROG = "jaxlic"


class _UsageError(Exception):
    """Raised by the parser instead of exiting, so that main() returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.format_usage()}{self.prog}: error: {' '.join(message.split())}")


def _fmt_bytes(n: int) -> str:
    return f"{n} B" if n < 10_000 else f"{n / 1024:.1f} KiB"


def _print_notes(notes: list[str], file=None) -> None:
    for note in notes:
        print(f"note: {note}", file=file or sys.stdout)


#: Codecs kept between calls by a resident server (``jaxlic server run`` makes it a dict, of at
#: most ``_MAX_CODECS``, least recently used dropped first); None in a process that serves one call.
_CODECS: dict | None = None
_MAX_CODECS = 4


def _codec_key(name, quality, weights) -> tuple:
    if weights is None:
        return (name, quality, None)
    st = os.stat(weights)  # a missing file fails here as it would in zoo.load
    return (name, quality, os.path.abspath(weights), st.st_size, st.st_mtime_ns)


def _load_codec(name, quality, weights, timings=None):
    def phase(name):
        return timings.phase(name) if timings is not None else contextlib.nullcontext()

    with phase("imports"):
        from jaxlic import zoo  # lazily: pulls in JAX
    if timings is not None and "jax" in sys.modules:
        batch.Timings.watch_jax()
    key = _codec_key(name, quality, weights) if _CODECS is not None else None
    if key is not None and key in _CODECS:
        _CODECS[key] = _CODECS.pop(key)  # most recently used last
        return _CODECS[key]
    with phase("weights"):
        codec = zoo.load(name=name, quality=quality, weights=weights)
    if key is not None:
        while len(_CODECS) >= _MAX_CODECS:
            _CODECS.pop(next(iter(_CODECS)))
        _CODECS[key] = codec
    return codec


def _usage(command: str, message: str) -> _UsageError:
    return _UsageError(f"{PROG} {command}: error: {message}")


def _is_variable_rate(name) -> bool:
    """Whether a model name is a registered variable-rate model (jax-free; False if unknown)."""
    from jaxlic.models import registry

    try:
        return registry.is_variable_rate(name)
    except JaxlicError:
        return False


def _load_for_coding(args, command: str, size: tuple[int, int] | None = None, timings=None):
    """The codec of `--model`/`--weights`, and the rate parameter or target to code at.

    `--quality` picks a fixed-rate model's weights; given to a variable-rate model it is the old
    name of `--rate` (a note on stderr). The codec checks the rate or target (`RDCodec.check`;
    with `size`, also against the header of an image of that size).

    Returns:
      `(codec, kwargs of RDCodec.compress)`.
    Raises:
      _UsageError: a quality, rate or target the model cannot take (before any output is written).
    """
    quality, rate = args.quality, args.rate
    if quality is not None and _is_variable_rate(args.model):
        print(f"{PROG}: note: --quality of a variable-rate model is deprecated: use --rate", file=sys.stderr)
        quality, rate = None, quality
    if quality is not None and not float(quality).is_integer():
        raise _usage(
            command, f"{args.model} is a fixed-rate model: --quality is an integer index, not {quality:g}"
        )
    codec = _load_codec(args.model, None if quality is None else int(quality), args.weights, timings)
    rate_kw = {
        k: v
        for k, v in (("rate", rate), ("target_bpp", args.target_bpp), ("target_bytes", args.target_size))
        if v is not None
    }
    try:
        codec.check(**rate_kw, size=size)
    except ModelError as e:
        raise _usage(command, _one_line(e)) from None
    return codec, rate_kw


def _describe(codec) -> str:
    """`quality Q` of a fixed-rate codec, `rate parameter q (range lo..hi)` of a variable-rate one."""
    from jaxlic.rdcodec import describe

    return describe(codec)


def _check_output(path: str, force: bool) -> None:
    """Fails before any expensive work when the output cannot be written."""
    if os.path.isdir(path):
        raise JaxlicError(f"output is a directory: {path}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise JaxlicError(f"output directory does not exist: {directory}")
    if not force and os.path.lexists(path):
        raise JaxlicError(f"output file exists: {path} (use --force to overwrite)")


# ----------------------------------------------------------------------------------------------
# subcommands


def _plan(args, command: str) -> tuple[str, str] | None:
    """``(input, output)`` of the single-file form, or None for a batch (``--out-dir``).

    Checked before any expensive work: the output must be new (or ``--force``), and ``-`` must not
    be a terminal.

    Raises:
      _UsageError: a batch without ``--out-dir``, ``-`` in a batch, or a lone input.
    """
    paths = args.paths
    if args.out_dir is not None:
        if "-" in paths:
            raise _usage(command, "- (stdin) cannot be part of a batch: name the files with --out-dir")
        return None
    if len(paths) == 1:
        raise _usage(command, "missing the output file (or --out-dir DIR for a batch)")
    if len(paths) > 2:
        raise _usage(command, f"{len(paths)} paths: several inputs need --out-dir DIR")
    if paths[1] != "-":
        _check_output(paths[1], args.force)
    _refuse_terminal(paths[1])
    return paths[0], paths[1]


def _refuse_terminal(output: str) -> None:
    if output == "-" and batch._isatty(sys.stdout):
        raise JaxlicError(
            "refusing to write binary data to a terminal: redirect stdout or name an output file"
        )


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def cmd_compress(args) -> int:
    """``jaxlic compress``: image file(s) -> .jlic file(s)."""
    timings = batch.Timings()
    plan = _plan(args, "compress")
    with timings.phase("imports"):
        compile_cache.enable()
        from jaxlic.image_io import read_image, read_image_bytes, write_bytes_atomic
    if plan is None:
        return _compress_batch(args, timings)
    source, output = plan
    report = sys.stderr if output == "-" else sys.stdout  # stdout carries the stream
    with timings.phase("read"):
        if source == "-":
            raw = sys.stdin.buffer.read()
            img, notes = read_image_bytes(raw, "<stdin>")
            input_size = len(raw)
        else:
            img, notes = read_image(source)
            input_size = os.path.getsize(source)
    _print_notes(notes, report)
    codec, rate_kw = _load_for_coding(args, "compress", img.shape[:2], timings)
    t0 = time.perf_counter()
    with timings.coding(codec):
        if args.refine:
            data = _compress_refined(codec, img, args.refine, args.refine_method, rate_kw)
        else:
            data = codec.compress(img, **rate_kw)
    t_enc = time.perf_counter() - t0
    with timings.phase("write"):
        if output == "-":
            _write_stdout(data)
        else:
            write_bytes_atomic(output, data, force=args.force)
    _note_rate_search(codec, rate_kw)
    h, w = img.shape[:2]
    print(
        f"{'<stdin>' if source == '-' else source} -> {'<stdout>' if output == '-' else output}", file=report
    )
    print(f"  model {codec.name} {_describe(codec)}, image {w}x{h}", file=report)
    print(
        f"  {len(data)} bytes = {8 * len(data) / (h * w):.4f} bpp (input file {_fmt_bytes(input_size)})",
        file=report,
    )
    if args.refine:
        r = codec.last_refine
        print(
            f"  latents refined by {args.refine} {args.refine_method} steps: "
            f"RD loss {r['loss_init']:.4f} -> {r['loss']:.4f}",
            file=report,
        )
    print(f"  encode {t_enc:.3f} s", file=report)
    if args.timings:
        print(timings.report(), file=sys.stderr)
    return 0


def _failure(e: BaseException) -> str:
    """The message of a per-file failure in a batch (internal errors say so)."""
    if isinstance(e, JaxlicError):
        return str(e)
    if isinstance(e, OSError):
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        return f"{e.strerror or e}{where}"
    if os.environ.get("JAXLIC_DEBUG"):
        raise e
    return f"internal error: {type(e).__name__}: {e} (set JAXLIC_DEBUG=1 for the traceback)"


def _run_batch(args, timings, command: str, extensions, done: str, code_one) -> int:
    """A batch: each input of ``args.paths`` coded into ``--out-dir`` by ``code_one(path, out,
    progress)``, which reports it with ``progress.ok``; an input that fails is reported in one line
    and skipped, and the call ends with a summary (exit status 1 if any failed)."""
    inputs = batch.expand(args.paths, extensions)
    os.makedirs(args.out_dir, exist_ok=True)
    progress = batch.Progress(len(inputs.files), done, prog=PROG)
    try:
        for spec, message in inputs.bad:
            progress.fail(spec, message, counted=False)
        outputs: dict[str, str] = {}
        for path in inputs.files:
            try:
                out = batch.output_path(path, args.out_dir, command)
                if out in outputs:
                    raise JaxlicError(f"its output {out} is also that of {outputs[out]}")
                outputs[out] = path
                _check_output(out, args.force)
                code_one(path, out, progress)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                progress.fail(path, _failure(e))
    finally:
        progress.close()
    return _finish(progress, args, timings)


def _compress_batch(args, timings) -> int:
    from jaxlic.image_io import IMAGE_EXTENSIONS, read_image, write_bytes_atomic

    codec, rate_kw = _load_for_coding(args, "compress", None, timings)

    def code_one(path, out, progress):
        with timings.phase("read"):
            img, notes = read_image(path)
        for note in notes:
            progress.note(path, note)
        h, w = img.shape[:2]
        codec.check(**rate_kw, size=(h, w))  # e.g. a target size below this image's header
        t0 = time.perf_counter()
        with timings.coding(codec):
            if args.refine:
                data = codec.compress(
                    img, refine_steps=args.refine, refine_method=args.refine_method, **rate_kw
                )
            else:
                data = codec.compress(img, **rate_kw)
        seconds = time.perf_counter() - t0
        with timings.phase("write"):
            write_bytes_atomic(out, data, force=args.force)
        search = codec.last_rate_search
        if rate_kw.keys() - {"rate"} and search is not None and search.note:
            progress.note(path, search.note)
        progress.ok(
            f"{path} -> {out}  {len(data)} bytes  {8 * len(data) / (h * w):.4f} bpp  "
            f"{_describe(codec)}  {seconds:.2f} s",
            bytes_in=os.path.getsize(path),
            bytes_out=len(data),
            pixels=h * w,
            stream_bytes=len(data),
        )

    return _run_batch(args, timings, "compress", IMAGE_EXTENSIONS, "compressed", code_one)


def _finish(progress, args, timings) -> int:
    print(progress.summary())
    if args.timings:
        print(timings.report(), file=sys.stderr)
    if progress.failed:
        print(f"{PROG}: error: {progress.failed} input(s) failed (see above)", file=sys.stderr)
        return 1
    return 0


def _note_rate_search(codec, rate_kw: dict) -> bool:
    """After `codec.compress(img, **rate_kw)`: prints the one-line note of a target search that
    could not reach its target (stderr). Returns whether `rate_kw` held a target size."""
    if not rate_kw.keys() - {"rate"}:
        return False
    search = codec.last_rate_search
    if search is not None and search.note:
        print(f"{PROG}: note: {_one_line(search.note)}", file=sys.stderr)
    return True


def _compress_refined(codec, img, steps: int, method: str, rate_kw: dict | None = None) -> bytes:
    """`codec.compress` with latent refinement and a progress bar."""
    from tqdm import tqdm

    with tqdm(total=steps, desc="refining latents", unit="step", leave=False, dynamic_ncols=True) as bar:

        def progress(_, loss):
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update()

        return codec.compress(
            img, refine_steps=steps, refine_method=method, progress=progress, **(rate_kw or {})
        )


def _read_stream(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    if os.path.isdir(path):
        raise JaxlicError(f"is a directory, not a .jlic file: {path}")
    with open(path, "rb") as f:
        return f.read()


def _codec_for_stream(header, args, timings, cache: dict):
    """The codec of a stream's model, quality and weights; loaded once per batch.

    Without ``--weights`` the shipped or archived weights the stream names (``zoo.for_stream``).
    """
    from jaxlic.coding.container import WEIGHTS_KEY

    key = (header.model, header.quality, header.extra.get(WEIGHTS_KEY))
    if key in cache:
        return cache[key]
    base = cache.get((header.model, header.quality))
    if base is None:
        base = cache[(header.model, header.quality)] = _load_codec(
            header.model, header.quality, args.weights, timings
        )
    codec = base
    if args.weights is None:  # the shipped or archived weights the stream names
        from jaxlic import zoo

        with timings.phase("weights"):
            codec = zoo.for_stream(header, base)
    codec.max_pixels = args.max_pixels
    cache[key] = codec
    return codec


def _decode(data: bytes, args, timings, cache: dict):
    """(image, header, codec, seconds) of a stream."""
    from jaxlic.coding.container import unpack

    header, _ = unpack(data, max_pixels=args.max_pixels)
    codec = _codec_for_stream(header, args, timings, cache)
    t0 = time.perf_counter()
    with timings.coding(codec):
        img = codec.decompress(data)
    seconds = time.perf_counter() - t0
    if img.shape != (header.height, header.width, 3):
        raise JaxlicError(f"decoder returned a {img.shape} image, header says {header.height}x{header.width}")
    return img, header, codec, seconds


def cmd_decompress(args) -> int:
    """``jaxlic decompress``: .jlic file(s) -> PNG(s)."""
    timings = batch.Timings()
    plan = _plan(args, "decompress")
    with timings.phase("imports"):
        compile_cache.enable()
        from jaxlic.image_io import encode_png, write_bytes_atomic
    if plan is None:
        return _decompress_batch(args, timings)
    source, output = plan
    report = sys.stderr if output == "-" else sys.stdout
    with timings.phase("read"):
        data = _read_stream(source)
    img, header, codec, t_dec = _decode(data, args, timings, {})
    with timings.phase("write"):
        png = encode_png(img)
        if output == "-":
            _write_stdout(png)
        else:
            write_bytes_atomic(output, png, force=args.force)
    print(
        f"{'<stdin>' if source == '-' else source} -> {'<stdout>' if output == '-' else output}", file=report
    )
    print(f"  model {header.model} {_describe(codec)}, image {header.width}x{header.height}", file=report)
    print(f"  {len(data)} bytes = {8 * len(data) / (header.height * header.width):.4f} bpp", file=report)
    print(f"  decode {t_dec:.3f} s", file=report)
    if args.timings:
        print(timings.report(), file=sys.stderr)
    return 0


def _decompress_batch(args, timings) -> int:
    from jaxlic.image_io import encode_png, write_bytes_atomic

    codecs: dict = {}

    def code_one(path, out, progress):
        with timings.phase("read"):
            data = _read_stream(path)
        img, header, codec, seconds = _decode(data, args, timings, codecs)
        with timings.phase("write"):
            png = encode_png(img)
            write_bytes_atomic(out, png, force=args.force)
        progress.ok(
            f"{path} -> {out}  {header.width}x{header.height}  "
            f"{8 * len(data) / (header.height * header.width):.4f} bpp  {seconds:.2f} s",
            bytes_in=len(data),
            bytes_out=len(png),
            pixels=header.height * header.width,
            stream_bytes=len(data),
        )

    return _run_batch(args, timings, "decompress", (batch.STREAM_EXTENSION,), "decompressed", code_one)


def cmd_info(args) -> int:
    """``jaxlic info``: print a .jlic header."""
    from jaxlic.coding.container import EXACT_KEY, RATE_KEY, SYMBOLS_KEY, WEIGHTS_KEY, rate_from_extra, unpack

    data = _read_stream(args.input)
    header, sections = unpack(data, max_pixels=args.max_pixels)
    print(f"file:     {args.input}")
    print(f"model:    {header.model}")
    print(f"quality:  {header.quality}")
    extra = dict(header.extra)
    if RATE_KEY in extra:
        try:
            q = rate_from_extra(extra[RATE_KEY])
        except BitstreamError:
            pass  # shown as a raw extra field below
        else:
            del extra[RATE_KEY]
            print(f"rate:     {q!r} (rate parameter of a variable-rate model)")
    print(f"size:     {header.width}x{header.height}")
    print(f"format:   version {header.version}")
    path = "exact" if header.exact else "float"
    check = (
        "with a symbol check" if header.has_symbol_check else "no symbol check (decodes only where written)"
    )
    print(f"entropy:  {path}, {check}")
    if WEIGHTS_KEY in extra:
        print(f"weights:  {extra.pop(WEIGHTS_KEY):016x}")
    extra.pop(SYMBOLS_KEY, None)
    extra.pop(EXACT_KEY, None)
    for key, value in sorted(extra.items()):
        print(f"extra:    {key} = {value}")
    print(f"sections: {len(sections)} ({', '.join(str(len(s)) for s in sections) or 'none'} bytes)")
    print(f"total:    {len(data)} bytes = {8 * len(data) / header.pixels:.4f} bpp")
    return 0


def cmd_demo(args) -> int:
    """``jaxlic demo``: round trip a bundled sample image and report rate and quality."""
    compile_cache.enable()
    from jaxlic.image_io import sample_image, write_png_atomic
    from jaxlic.metrics import ms_ssim_or_nan, psnr

    img = sample_image(args.sample)
    h, w = img.shape[:2]
    if args.out:
        _check_output(args.out, args.force)
    print(f"sample image {args.sample!r}: {w}x{h}, {h * w * 3} bytes uncompressed")
    t0 = time.perf_counter()
    codec, rate_kw = _load_for_coding(args, "demo", (h, w))
    t_load = time.perf_counter() - t0
    # The first call compiles the networks; time a second call for a steady-state figure.
    t0 = time.perf_counter()
    data = codec.compress(img, **rate_kw)
    t_enc_first = time.perf_counter() - t0
    targeted = _note_rate_search(codec, rate_kw)
    print(f"model {codec.name} {_describe(codec)} (loaded in {t_load:.2f} s)")
    if codec.rate_range is not None and not targeted:
        lo, hi = codec.rate_range
        print(f"  (one model for every rate: --rate {lo:g}..{hi:g}, --target-bpp B or --target-size BYTES)")
    t0 = time.perf_counter()
    recon = codec.decompress(data)
    t_dec_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    data2 = codec.compress(img, **rate_kw)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    recon = codec.decompress(data2)
    t_dec = time.perf_counter() - t0
    if data2 != data:
        print("warning: two compressions of the same image gave different streams")
    bpp = 8 * len(data) / (h * w)
    print(f"compressed: {len(data)} bytes, {bpp:.4f} bpp (ratio {h * w * 3 / len(data):.1f}:1)")
    print(
        f"estimated:  {codec.estimate_bpp(img, rate=codec.last_rate):.4f} bpp (model entropy, without header)"
    )
    print(f"PSNR:       {psnr(img, recon):.2f} dB")
    print(f"MS-SSIM:    {ms_ssim_or_nan(img, recon):.4f}")
    print(f"encode:     {t_enc:.3f} s  (first call, incl. compilation: {t_enc_first:.2f} s)")
    print(f"decode:     {t_dec:.3f} s  (first call, incl. compilation: {t_dec_first:.2f} s)")
    if args.out:
        write_png_atomic(args.out, recon, force=args.force)
        print(f"reconstruction written to {args.out}")
    return 0


def cmd_eval(args) -> int:
    """``jaxlic eval``: rate-distortion evaluation (see ``jaxlic/evaluation/rd.py``)."""
    compile_cache.enable()
    from jaxlic.evaluation import rd

    return rd.main_eval(args)


def cmd_compare(args) -> int:
    """``jaxlic compare``: per-image matched-rate comparison, of models against codecs or against a
    baseline model (from ``per_image_*.csv`` files, or coding images with both models)."""
    if args.against_model is not None or args.against_weights:
        compile_cache.enable()
    from jaxlic.evaluation import rd

    return rd.main_compare(args)


def cmd_server(args) -> int:
    """``jaxlic server start|stop|status``: the resident process of ``jaxlic.server``."""
    from jaxlic import server

    if server.folder() is None:
        raise JaxlicError("no private folder for the server's socket (set JAXLIC_SERVER_DIR)")
    if args.action == "run":
        return _serve()
    if args.action == "start":
        running, log = server.start()
        if not running:
            raise JaxlicError(f"the server did not start (log: {log})")
        about = server.status() or {}
        print(f"jaxlic server {about.get('pid')} running ({about.get('rss_mb')} MB); log: {log}")
        return 0
    about = server.status() if args.action == "status" else server.stop()
    if about is None:
        print("no jaxlic server runs for this interpreter, package and environment")
        return 0 if args.action == "stop" else 1
    if args.json:
        print(json.dumps(about))
        return 0
    verb = "stopped" if args.action == "stop" else "running"
    print(
        f"jaxlic server {about['pid']} {verb}: up {about['uptime_s']:.0f} s, {about['calls']} call(s), "
        f"{about['codecs']} codec(s) loaded, {about['rss_mb']} MB; socket {about['socket']}"
    )
    return 0


def _serve() -> int:
    """``jaxlic server run``: this process becomes the resident server, with JAX imported, the
    caches on and codecs kept between calls."""
    global _CODECS
    from jaxlic import server

    server_key = server.key()  # before JAX is imported: importing it sets environment variables
    if server.status() is not None:
        print("a jaxlic server already runs for this interpreter, package and environment")
        return 0
    from jaxlic import compile_cache, warm_start, zoo  # noqa: F401  (what every call would import)

    compile_cache.enable()
    _CODECS = {}

    def run_call(argv: list[str]) -> int:
        warm_start._reset_stats()  # --timings reports this call, not the server's life
        return main(argv)

    return server.serve(run_call, server_key, about=lambda: {"codecs": len(_CODECS)})


def cmd_bdrate(args) -> int:
    """``jaxlic bdrate``: Bjontegaard deltas between two CompressAI-format JSON files."""
    from jaxlic.evaluation import bdrate

    anchor = bdrate.load_rd_json(args.anchor)
    test = bdrate.load_rd_json(args.test)
    rate = bdrate.bd_rate_curves(anchor, test, args.metric, args.method)
    quality = bdrate.bd_psnr_curves(anchor, test, args.metric, args.method)
    unit = "dB"
    print(f"anchor: {anchor['name']}  ({args.anchor})")
    print(f"test:   {test['name']}  ({args.test})")
    print(f"BD-rate ({args.metric}, {args.method}): {rate:+.2f} %  (negative: test saves rate)")
    print(f"BD-{args.metric}: {quality:+.3f} {unit}")
    for label, curve in (("anchor", anchor), ("test", test)):
        value = bdrate.psnr_at_bpp(curve, args.bpp, args.metric)
        shown = "outside the curve" if value != value else f"{value:.3f}"
        print(f"{args.metric} at {args.bpp} bpp ({label}): {shown}")
    return 0


def cmd_convert(args) -> int:
    """``jaxlic convert-compressai``: delegated to ``jaxlic.convert.main_convert(args)``.

    ``args.argv`` holds the remaining command-line words, unparsed.
    """
    try:
        from jaxlic import convert
    except ImportError as e:
        raise JaxlicError(f"conversion is not available ({e}); install jaxlic[convert]") from None
    return int(convert.main_convert(args) or 0)


# ----------------------------------------------------------------------------------------------
# parser and entry point


def _number(text: str, positive: bool) -> float:
    """A finite number that is non-negative (or positive), else an argparse error."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise argparse.ArgumentTypeError(
            f"expected a {'positive' if positive else 'non-negative'} number, got {text!r}"
        )
    return value


def _quality(text: str) -> int | float:
    """A quality index (an int), or a rate parameter (by its deprecated alias): a finite
    non-negative number."""
    value = _number(text, positive=False)
    return int(value) if value.is_integer() else value


def _rate(text: str) -> float:
    """A rate parameter: a finite non-negative number."""
    return _number(text, positive=False)


def _positive(text: str) -> float:
    return _number(text, positive=True)


def _number_list(text: str, parse) -> list:
    try:
        values = [parse(t) for t in text.replace(",", " ").split()]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected non-negative numbers separated by commas, got {text!r}")
    return values


def _quality_list(text: str) -> list:
    """Quality indices (integers; floats: the deprecated alias of rate parameters)."""
    return _number_list(text, _quality)


def _rate_list(text: str) -> list[float]:
    """Rate parameters of variable-rate models."""
    return _number_list(text, _rate)


def _bpp_list(text: str) -> list[float]:
    """Rates in bits per pixel (positive)."""
    return _number_list(text, _positive)


def _steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected a number of steps between 0 and 100000, got {text!r}")
    return value


def _str_list(text: str) -> list[str]:
    return [t for t in text.replace(",", " ").split() if t]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``jaxlic`` command."""
    from jaxlic import __version__
    from jaxlic.coding.container import DEFAULT_MAX_PIXELS

    parser = _Parser(prog=PROG, description="Learned image compression in JAX/Flax.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def refine_method_arg(p):
        p.add_argument(
            "--refine-method",
            choices=("sga", "ste"),
            default="sga",
            help="rounding the refinement's gradient goes through: sga (annealed soft "
            "rounding, default) or ste (straight-through; cheaper steps, stalls sooner)",
        )

    def model_args(p, with_model=True):
        if with_model:
            p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
            rate = p.add_mutually_exclusive_group()
            rate.add_argument(
                "--quality",
                type=_quality,
                default=None,
                metavar="Q",
                help="integer quality index of a fixed-rate model (which weights; default: a shipped "
                "one); for a variable-rate model (-vr), a deprecated alias of --rate",
            )
            rate.add_argument(
                "--rate",
                type=_rate,
                default=None,
                metavar="R",
                help="continuous rate parameter of a variable-rate model (-vr), in its range (0..7 for "
                "the shipped ones; default: its trained point nearest lambda 0.0035)",
            )
            rate.add_argument(
                "--target-bpp",
                type=_positive,
                default=None,
                metavar="B",
                help="variable-rate models: the rate parameter whose stream is B bits per pixel (± 3%%)",
            )
            rate.add_argument(
                "--target-size",
                type=_positive,
                default=None,
                metavar="BYTES",
                help="variable-rate models: the rate parameter whose stream is BYTES long (± 3%%)",
            )
        p.add_argument(
            "--weights", default=None, help="weights file (.msgpack) instead of the shipped weights"
        )

    p = sub.add_parser("demo", help="compress and decompress a bundled sample image, print rate and quality")
    p.add_argument("--sample", default="astronaut", choices=("astronaut", "coffee", "chelsea"))
    model_args(p)
    p.add_argument("--out", default=None, help="also write the reconstruction to this PNG")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_demo)

    def batch_args(p, what: str, out: str):
        p.add_argument(
            "--out-dir",
            default=None,
            metavar="DIR",
            help=f"code every input into DIR (created if missing): each {what} keeps its name {out}; "
            "inputs may be files, folders and quoted glob patterns",
        )
        p.add_argument(
            "--timings",
            action="store_true",
            help="also print where the time went (imports, weights, compile, network, coding) on stderr",
        )

    p = sub.add_parser(
        "compress",
        help="compress image files into .jlic files",
        usage=f"{PROG} compress [options] IN OUT | IN... --out-dir DIR",
        description="Compress an image (IN OUT; - is stdin or stdout) or many (IN... --out-dir DIR).",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="IN OUT, or inputs with --out-dir (images, folders, globs)"
    )
    batch_args(p, "image", "and gets .jlic appended (a.png -> a.png.jlic)")
    model_args(p)
    p.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    p.add_argument(
        "--refine",
        type=_steps,
        default=0,
        metavar="STEPS",
        help="search for better latents of this image for STEPS gradient steps before coding "
        "(slower encoding, same decoder; 40 is a good start; default 0: off)",
    )
    refine_method_arg(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser(
        "decompress",
        help="decompress .jlic files into PNGs",
        usage=f"{PROG} decompress [options] IN OUT | IN... --out-dir DIR",
        description="Decompress a stream (IN OUT; - is stdin or stdout) or many (IN... --out-dir DIR).",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="IN OUT, or inputs with --out-dir (.jlic files, folders, globs)",
    )
    batch_args(p, "stream", "with .jlic replaced by .png (a.png.jlic -> a.png)")
    model_args(p, with_model=False)
    p.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse streams declaring more pixels (default {DEFAULT_MAX_PIXELS})",
    )
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="print the header of a .jlic file")
    p.add_argument("input", help=".jlic file")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="rate-distortion evaluation of models and classical codecs on a folder")
    p.add_argument("images", help="folder of images (e.g. Kodak)")
    p.add_argument("--models", type=_str_list, default=[], help="models, comma separated (default: none)")

    def points_args(p):
        p.add_argument(
            "--qualities",
            type=_quality_list,
            default=None,
            metavar="Q,...",
            help="quality indices of fixed-rate models (default: all shipped); for variable-rate models "
            "a deprecated alias of --rates",
        )
        p.add_argument(
            "--rates",
            type=_rate_list,
            default=None,
            metavar="R,...",
            help="rate parameters of variable-rate models (default: 8 evenly over their range)",
        )

    points_args(p)
    p.add_argument(
        "--weights",
        nargs="*",
        default=[],
        help="weight files to evaluate (a fixed-rate one is one RD point, a variable-rate one a curve)",
    )
    p.add_argument(
        "--codecs",
        type=_str_list,
        default=[],
        help="classical codecs: jpeg,webp,webp-m4,jpeg2000,avif,heif,jxl,bpg",
    )
    p.add_argument(
        "--codec-qualities",
        type=_quality_list,
        default=None,
        help="quality sweep for every codec (default: a per-codec sweep; jpeg2000 takes target bpp)",
    )
    p.add_argument(
        "--reuse",
        nargs="+",
        default=None,
        metavar="CSV",
        help="reuse rows of earlier per_image_*.csv files (codecs found there are not run again)",
    )
    p.add_argument("--out", required=True, help="output folder, e.g. results/kodak")
    p.add_argument("--anchors", default=None, help="folder of published CompressAI-format JSONs to plot")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images")
    p.add_argument(
        "--refine",
        type=_steps,
        default=0,
        metavar="STEPS",
        help="also evaluate every model with latent refinement of STEPS steps (as a separate curve)",
    )
    refine_method_arg(p)
    p.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="also write a visual report, DIR/index.html: crops of each image as every model and codec "
        "decoded it (codecs at the file size nearest the model's), with the RD plots",
    )
    p.add_argument(
        "--report-bpp",
        type=_positive,
        default=0.15,
        metavar="B",
        help="the report shows each model at its setting nearest B bits per pixel (default 0.15)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing results in --out")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "compare",
        help="per-image matched-rate comparison: models against codecs, or a model against a baseline model",
        usage=f"{PROG} compare [options] per_image_*.csv [--against BASE.csv...] | IMAGES... "
        "(--against-model B | --against-weights FB...)",
        description="Per image at matched rate (each image's curve of the other side read at the rate "
        "the model's stream took there; mean over images with a 95% bootstrap CI). From per-image "
        "files of jaxlic eval: their models against their codecs, or against the model in --against. "
        "With --against-model/--against-weights: code IMAGES with both models first.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH",
        help="per_image_*.csv files written by jaxlic eval; with --against-model/--against-weights: "
        "images (files, folders, quoted globs)",
    )
    p.add_argument(
        "--models", type=_str_list, default=[], help="only these models of the files (default: all)"
    )
    p.add_argument("--codecs", type=_str_list, default=[], help="only these codecs (default: all)")
    p.add_argument(
        "--against",
        nargs="+",
        default=None,
        metavar="CSV",
        help="per-image file(s) of the baseline model: compare the model of PATH against it (test − baseline)",
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"with images: the model under test (default: that of --weights, else {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--weights",
        nargs="+",
        default=[],
        metavar="FILE",
        help="with images: weights of the model under test",
    )
    p.add_argument(
        "--same-points",
        action="store_true",
        help="with --against: use the baseline's results at the test's rate points only (curves "
        "of different density are read with different interpolation errors)",
    )
    p.add_argument("--against-model", default=None, metavar="NAME", help="with images: the baseline model")
    p.add_argument(
        "--against-weights",
        nargs="+",
        default=[],
        metavar="FILE",
        help="with images: weights of the baseline",
    )
    points_args(p)
    p.add_argument(
        "--max-images", type=int, default=None, metavar="N", help="with images: use only the first N"
    )
    p.add_argument(
        "--at-bpp",
        type=_bpp_list,
        default=[],
        metavar="B,...",
        help="model against baseline: also read both curves at these rates (bits per pixel)",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the comparison (e.g. results/kodak/summary.json)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "server",
        help="a resident process that codes later compress/decompress calls without start-up",
        description="start: run a server in the background (later compress/decompress calls of "
        "this interpreter, package and JAX/XLA environment hand their work to it; JAXLIC_SERVER=1 "
        "starts one when needed, JAXLIC_SERVER=0 never uses one); stop: end it; status: show it.",
    )
    p.add_argument("action", choices=("start", "stop", "status", "run"), help="run: serve in the foreground")
    p.add_argument("--json", action="store_true", help="status: print the server's numbers as JSON")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("bdrate", help="Bjontegaard delta rate/PSNR between two RD JSON files")
    p.add_argument("anchor", help="anchor curve (CompressAI-format JSON)")
    p.add_argument("test", help="test curve (CompressAI-format JSON)")
    p.add_argument("--bpp", type=float, default=0.15, help="also report quality at this rate (default 0.15)")
    p.add_argument("--metric", default="psnr-rgb", help="psnr-rgb (default), ms-ssim-db, ms-ssim")
    p.add_argument("--method", default="pchip", choices=("pchip", "polyfit"))
    p.set_defaults(func=cmd_bdrate)

    p = sub.add_parser(
        "convert-compressai", help="convert CompressAI weights (needs jaxlic[convert])", add_help=False
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, help="arguments for the converter")
    p.set_defaults(func=cmd_convert)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv=None) -> int:
    """Entry point of the ``jaxlic`` console script.

    Args:
        argv: command-line words without the program name (default ``sys.argv[1:]``).

    Returns:
        Exit status: 0 success, 1 error (one line on stderr), 2 usage error, 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if _CODECS is None and argv[:1] in (["compress"], ["decompress"]):
        from jaxlic import server

        code = server.forward(argv)  # a running resident server codes it (jaxlic.server)
        if code is not None:
            return code
    parser = build_parser()
    try:
        if argv[:1] == ["convert-compressai"]:
            # argparse cannot pass through words that look like options; the converter
            # parses its own arguments.
            args = argparse.Namespace(command=argv[0], argv=argv[1:], func=cmd_convert)
        else:
            args = parser.parse_args(argv)
    except _UsageError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    try:
        return int(args.func(args) or 0)
    except _UsageError as e:
        sys.stderr.write(f"{_one_line(e)}\n")
        return 2
    except JaxlicError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: {_one_line(e.strerror or e)}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line unless asked for the traceback
        if os.environ.get("JAXLIC_DEBUG"):
            raise
        print(
            f"{PROG}: internal error: {type(e).__name__}: {_one_line(e)} "
            "(set JAXLIC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
