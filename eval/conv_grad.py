"""Weight-gradient speed of convolutions: XLA's own against `jaxlic.layers.fastconv`'s pieces.

For the conv shapes of cheng2020-anchor (N=128) training on a batch of 8 x 256 x 256, times the
forward pass, the input gradient, XLA's weight gradient and fastconv's (median of several runs
after a warm-up, measured side by side in one process), and prints the ratio. fastconv keeps XLA's
weight gradient where pieces do not pay (pieces = 1), so there the two columns time the same op.

  python -m eval.conv_grad --json results/conv_grad.json
  python -m eval.conv_grad --batch 2 --json /tmp/c.json     # quicker
"""

from __future__ import annotations

import argparse

from eval import harness

NHWC = ("NHWC", "HWIO", "NHWC")

# (name, input H=W at 256 px, in channels, out channels, kernel, stride)
SHAPES = [
    ("3x3 s2 3->128 (g_a in)", 256, 3, 128, 3, 2),
    ("3x3 128->128 @128", 128, 128, 128, 3, 1),
    ("3x3 s2 128->128 @128", 128, 128, 128, 3, 2),
    ("1x1 s2 128->128 @128", 128, 128, 128, 1, 2),
    ("3x3 128->128 @64", 64, 128, 128, 3, 1),
    ("3x3 128->512 @64 (subpel)", 64, 128, 512, 3, 1),
    ("3x3 128->128 @32", 32, 128, 128, 3, 1),
    ("3x3 128->12 @128 (g_s out)", 128, 128, 12, 3, 1),
]


def _time(fn, *args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` after one untimed call (the compile)."""
    return harness.median(harness.repeat(lambda: fn(*args).block_until_ready(), repeats, warmup=1)[1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="output file")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the spatial sizes")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    run = harness.Run("eval.conv_grad", argv)

    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top

    from jaxlic.layers import fastconv  # pylint: disable=g-import-not-at-top

    rng = np.random.default_rng(0)
    rows = []
    print(f"batch {args.batch}, device {jax.devices()[0].device_kind}; milliseconds")
    print(
        f"{'layer':30s} {'fwd':>8s} {'dx':>8s} {'dw xla':>8s} {'dw split':>8s} {'pieces':>6s} {'xla/split':>9s}"
    )
    for name, size, cin, cout, k, s in SHAPES:
        size = max(k, int(size * args.scale))
        p = k // 2
        pad = ((p, p), (p, p))
        x = jax.numpy.asarray(rng.normal(size=(args.batch, size, size, cin)), "float32")
        w = jax.numpy.asarray(rng.normal(size=(k, k, cin, cout)) * 0.05, "float32")
        conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (s, s), pad, dimension_numbers=NHWC)
        y = conv(x, w)
        g = jax.numpy.asarray(rng.normal(size=y.shape), "float32")
        fwd = jax.jit(conv)
        dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
        dw_xla = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
        split = lambda x, w: fastconv.conv_general_dilated(x, w, (s, s), pad, dimension_numbers=NHWC)
        dw_split = jax.jit(lambda x, w, g: jax.vjp(lambda w: split(x, w), w)[1](g)[0])
        err = float(
            jax.numpy.abs(dw_xla(x, w, g) - dw_split(x, w, g)).max() / jax.numpy.abs(dw_xla(x, w, g)).max()
        )
        t = {
            key: 1e3 * _time(f, *a, repeats=args.repeats)
            for key, f, a in (
                ("forward_ms", fwd, (x, w)),
                ("input_grad_ms", dx, (x, w, g)),
                ("weight_grad_xla_ms", dw_xla, (x, w, g)),
                ("weight_grad_split_ms", dw_split, (x, w, g)),
            )
        }
        pieces = fastconv.num_pieces(x.shape, w.shape, (s, s), pad)
        ratio = t["weight_grad_xla_ms"] / t["weight_grad_split_ms"]
        rows.append(
            {
                "layer": name,
                "input": list(x.shape),
                "kernel": list(w.shape),
                "stride": s,
                "pieces": pieces,
                "rel_err": err,
                "ratio_xla_over_split": ratio,
                **t,
            }
        )
        print(
            f"{name:30s} {t['forward_ms']:8.1f} {t['input_grad_ms']:8.1f} "
            f"{t['weight_grad_xla_ms']:8.1f} {t['weight_grad_split_ms']:8.1f} {pieces:6d} {ratio:8.2f}x",
            flush=True,
        )
    total_xla = sum(r["weight_grad_xla_ms"] for r in rows)
    total_split = sum(r["weight_grad_split_ms"] for r in rows)
    print(
        f"all layers: XLA weight gradients {total_xla:.0f} ms, split {total_split:.0f} ms "
        f"({total_xla / total_split:.2f}x)"
    )
    if args.json:
        harness.write_json(
            args.json,
            {
                "batch": args.batch,
                "device": jax.devices()[0].device_kind,
                "target_pixels": fastconv.TARGET_PIXELS,
                "layers": rows,
                "ratio_total": total_xla / total_split,
                "provenance": run.provenance(),
            },
        )


if __name__ == "__main__":
    main()
