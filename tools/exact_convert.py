"""Converts a float model to the exact (integer) entropy path (issue "Portable bitstreams").

  python tools/exact_convert.py calibrate jaxlic/pretrained/ckbd-full-vr-q0.msgpack
      prints the fractional bits of the exact path's activation points (`ModelConfig.exact`),
      measured on crops of training photos (never the evaluation set), at every trained rate
      point of a variable-rate model;
  python tools/exact_convert.py ptq IN.msgpack OUT.msgpack --exact 8,10,9,...
      writes the exact model with IN's weights as they are (post-training quantisation: the
      integer weights are IN's rounded to their grids);
  the short fine-tune that converts for good is a warm start of the trainer with the same bits:
      python -m train.main --config train/configs/ckbd.py:cpu,vr --workdir runs/exact/NAME \\
          --config.init_from=IN.msgpack --config.exact=8,10,9,... --config.num_steps=...

Both written files hold the params on their integer grids and z's integer CDFs (`z_tables`), so the compact (float16) copy of
`tools/compact_weights.py` stores them exactly, and `exact_bounds`: each integer convolution's
worst-case |accumulator| as a fraction of 2^31 (an overflow is refused).
"""

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _crops(data: pathlib.Path, n: int, size: int, seed: int) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no images in {data}")
    rng = np.random.default_rng(seed)
    out = []
    for path in rng.choice(files, size=min(n, len(files)), replace=False):
        img = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
        h, w = img.shape[:2]
        if h < size or w < size:
            continue
        i, j = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(img[i : i + size, j : j + size])
    return np.stack(out)


def calibrate(weights_path: str, data: pathlib.Path, n: int, size: int, seed: int) -> tuple[int, ...]:
    """The exact path's fractional bits for a float weights file: the least over its rate points."""
    import jax.numpy as jnp

    from jaxlic import zoo
    from jaxlic.latent import exact

    codec = zoo.load(weights=weights_path)
    model, v = codec.model, codec.variables
    x = jnp.asarray(_crops(data, n, size, seed))
    rates = [float(q) for q in range(codec.num_rates)] if codec.variable_rate else [None]
    med = model.apply(v, method=lambda net: net.entropy_bottleneck.medians())
    specs = []
    for q in rates:
        y, z = model.apply(v, x, *(() if q is None else (jnp.float32(q),)), method="analysis")
        specs.append(model.apply(v, y, jnp.round(z - med) + med, method=exact.calibrate))
    return tuple(int(f) for f in np.min(np.array(specs), axis=0))


def z_tables(params) -> dict:
    """z's integer CDFs, computed once here and shipped in the weights' metadata, so that no
    decoder builds them with its own float maths."""
    from jaxlic.coding.tables import tables_to_dict
    from jaxlic.entropy import factorized

    return tables_to_dict(factorized.build_tables(params["entropy_bottleneck"]))


def ptq(src: str, dst: str, spec: tuple[int, ...]) -> None:
    """Writes the exact model of `src`'s weights with fractional bits `spec`."""
    import jax

    from jaxlic import weights
    from jaxlic.models.compressor import Compressor
    from jaxlic.models.config import ModelConfig

    params, meta = weights.load(src)
    cfg = ModelConfig(**{**meta["config"], "exact": list(spec)})
    model = Compressor(cfg)
    snapped, bounds = model.apply(
        {"params": jax.tree_util.tree_map(np.asarray, params)}, method="exact_export"
    )
    worst = {name: [b / 2**31 for b in v] for name, v in bounds.items()}
    if any(b >= 1 for v in worst.values() for b in v):
        raise SystemExit(f"an integer convolution could overflow int32: {worst}")
    meta = {**meta, "config": cfg.to_dict(), "exact_bounds": worst, "converted_from": str(src)}
    meta["z_tables"] = z_tables(snapped)
    weights.save(dst, snapped, meta)
    print(
        f"wrote {dst}: exact={','.join(map(str, spec))}, worst accumulator {max(max(v) for v in worst.values()):.3f} x 2^31"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate", help="print the exact path's fractional bits of a float model")
    c.add_argument("weights")
    c.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data" / "train")
    c.add_argument("--crops", type=int, default=16)
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("ptq", help="write the exact model of a float weights file as it is")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("--exact", required=True, help="fractional bits, comma-separated (from calibrate)")
    args = p.parse_args(argv)
    if args.cmd == "calibrate":
        print(",".join(map(str, calibrate(args.weights, args.data, args.crops, args.size, args.seed))))
    else:
        ptq(args.input, args.output, tuple(int(v) for v in args.exact.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
