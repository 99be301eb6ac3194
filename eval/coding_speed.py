"""Entropy-coding throughput of jaxlic's three entropy models on a Kodak-sized latent.

Times the host-side coding path only (numpy + constriction, CDF construction included): the
factorized prior (Ballé et al. 2018, "Variational image compression with a scale hyperprior"), the
conditional Gaussian (Minnen et al. 2018) and the discretized Gaussian mixture (Cheng et al. 2020,
"Learned Image Compression with Discretized Gaussian Mixture Likelihoods and Attention Modules").

The latent is synthetic but shaped and scaled like a real one: ``y`` of a 768x512 image with
M=320 channels is ``[1, 32, 48, 320]`` (491,520 symbols); per-channel scales are log-uniform in
[0.3, 5] with per-element log-normal jitter, and symbols are drawn from the model itself, so the
rate is also checked against the information content (``-sum log2 P``, in float64, under the exact
parameters the coder uses).

Run: ``python -m eval.coding_speed [--repeats 3] [--json OUT]``.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import ndtr

from eval import harness

SHAPE = (1, 32, 48, 320)  # y of a Kodak image (768x512) with M=320


def _best(fn, repeats):
    out, times = harness.repeat(fn, repeats)
    return out, min(times), times[0]


def _scales(rng, shape):
    ch = np.exp(rng.uniform(np.log(0.3), np.log(5.0), shape[-1]))
    return (ch * np.exp(rng.normal(0, 0.5, shape))).astype(np.float32)


def bench_gaussian(rng, repeats):
    from jaxlic.entropy import gaussian

    scales = _scales(rng, SHAPE)
    means = (rng.normal(size=SHAPE) * 2).astype(np.float32)
    y = means + rng.normal(size=SHAPE) * scales
    sym = np.rint(y - means).astype(np.int32)

    gaussian.build_tables.cache_clear()
    _, tables_s = harness.timed(gaussian.build_tables)
    data, enc_s, _ = _best(lambda: gaussian.encode_gaussian(sym, scales), repeats)
    out, dec_s, _ = _best(lambda: gaussian.decode_gaussian(data, scales), repeats)
    assert np.array_equal(out, sym)
    s_tab = gaussian.SCALE_TABLE.astype(np.float64)[gaussian.scale_indexes(scales)]
    v = np.abs(sym.astype(np.float64))
    p = ndtr((0.5 - v) / s_tab) - ndtr((-0.5 - v) / s_tab)
    info = -np.log2(np.maximum(p, 1e-9)).sum()
    return dict(enc_s=enc_s, dec_s=dec_s, setup_s=tables_s, bits=8 * len(data), info=info)


def bench_mixture(rng, repeats, k=3):
    from jaxlic.entropy import mixture

    n = int(np.prod(SHAPE))
    center = rng.normal(size=(n, 1)) * 2
    s_raw = _scales(rng, SHAPE + (k,)).reshape(n, k)
    w, m, s = mixture.quantize_params(
        rng.normal(size=(n, k)) * 1.5, center + rng.normal(size=(n, k)) * 0.7, s_raw
    )
    comp = np.minimum((rng.random(n)[:, None] > np.cumsum(w, 1)).sum(1), k - 1)
    rows = np.arange(n)
    sym = np.rint(m[rows, comp] + rng.normal(size=n) * s[rows, comp]).astype(np.int32)

    mixture._phi_table.cache_clear()
    data, cold_s = harness.timed(mixture.encode_mixture, sym, w, m, s)
    data, enc_s, _ = _best(lambda: mixture.encode_mixture(sym, w, m, s), repeats)
    out, dec_s, _ = _best(lambda: mixture.decode_mixture(data, w, m, s), repeats)
    assert np.array_equal(out, sym)
    yy = sym.astype(np.float64)[:, None]
    p = (w * (ndtr((yy + 0.5 - m) / s) - ndtr((yy - 0.5 - m) / s))).sum(-1)
    info = -np.log2(np.maximum(p, 1e-9)).sum()
    return dict(enc_s=enc_s, dec_s=dec_s, cold_enc_s=cold_s, bits=8 * len(data), info=info)


def bench_factorized(rng, repeats):
    import jax
    import jax.numpy as jnp

    from jaxlic.entropy import EntropyBottleneck, factorized

    c = SHAPE[-1]
    eb = EntropyBottleneck(c)
    variables = jax.jit(eb.init, static_argnums=2)(
        {"params": jax.random.key(0), "noise": jax.random.key(1)}, jnp.zeros((1, 1, 1, c)), False
    )
    params = jax.tree.map(np.asarray, variables["params"])
    z = (rng.normal(size=SHAPE) * np.exp(rng.uniform(np.log(0.5), np.log(4), c))).astype(np.float32)

    tables, setup_s, _ = _best(lambda: factorized.build_tables(params), 1)
    z_sym = factorized.symbols(z, params)  # the host coder's z path (jaxlic.latent.host)
    data, enc_s, _ = _best(lambda: factorized.encode_symbols(z_sym, tables), repeats)
    out, dec_s, _ = _best(lambda: factorized.decode_symbols(data, z.shape, tables), repeats)
    _, lik = jax.jit(eb.apply, static_argnums=2)(variables, jnp.asarray(z), False)
    assert np.array_equal(out, z_sym)
    info = -np.log2(np.asarray(lik, np.float64)).sum()
    return dict(enc_s=enc_s, dec_s=dec_s, setup_s=setup_s, bits=8 * len(data), info=info)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions; the best is reported")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    run = harness.Run("eval.coding_speed", argv)
    n = int(np.prod(SHAPE))
    results = {"shape": SHAPE, "symbols": n, "models": {}}
    print(f"latent {SHAPE} = {n} symbols, best of {args.repeats}")
    print(f"{'model':<11}{'enc Msym/s':>11}{'dec Msym/s':>11}{'bits/sym':>10}{'bits/info':>11}  notes")
    for name, fn in [
        ("factorized", bench_factorized),
        ("gaussian", bench_gaussian),
        ("mixture", bench_mixture),
    ]:
        r = fn(np.random.default_rng(0), args.repeats)
        r.update(
            enc_sym_per_s=n / r["enc_s"],
            dec_sym_per_s=n / r["dec_s"],
            bits_per_symbol=r["bits"] / n,
            ratio=r["bits"] / r["info"],
        )
        results["models"][name] = r
        note = (
            f"tables {r['setup_s'] * 1e3:.0f} ms (once)"
            if "setup_s" in r
            else f"first call {n / r['cold_enc_s'] / 1e6:.2f} Msym/s (builds the Phi table)"
        )
        print(
            f"{name:<11}{r['enc_sym_per_s'] / 1e6:>11.2f}{r['dec_sym_per_s'] / 1e6:>11.2f}"
            f"{r['bits_per_symbol']:>10.3f}{r['ratio']:>11.5f}  {note}"
        )
    results = {**run.provenance(), **results}
    if args.json:
        harness.write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
