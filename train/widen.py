"""Widens a trained model's latent (M channels -> a larger M) without changing what it computes.

  python -m train.widen OLD.msgpack WIDE.msgpack --M 128
  python -m train.main --config train/configs/ckbd.py:cpu,vr --config.M=128 --config.init_from=WIDE.msgpack ...

Why: with M=64 latent channels at 1/16 of the resolution the analysis/synthesis pair keeps 64
numbers per 16x16x3 block, and its reconstruction without any quantisation tops out near the
linear bound of keeping 64 of the block's 768 principal components (29.7 dB on Kodak; the
default reaches 29.0 without quantisation), the "ceiling" of the default's curve
(results/default/README.md, "Decision 3"). A wider latent lifts that bound; widening the trained
model keeps what its 64 channels learned.

How. The wide model is initialised as usual, then every parameter that touches the latent's
width takes the trained values in the slots of the old channels, and the weights from new
inputs to old outputs are zeroed: every old feature, and so the reconstruction, the hyperprior
and the old channels' entropy parameters, is what the trained model computes, whatever the new
channels hold (tested). The new channels start small (their analysis output scaled by
`NEW_LATENT_SCALE`) under the narrowest prior.

Measured (pilot `wide128`, results/default/README.md, "Decision 3"): in 1500 steps training did
**not** bring these new channels to life. Their latents round to 0 and the synthesis' weights
from them start at 0, so neither gets a gradient through the reconstruction, and the rate term
keeps the latents at 0: the widened model stayed the model it was widened from. This start is
exact, not yet useful. `--live` (`widen_params(live=True)`) starts the new channels at full size
with priors copied from old channels instead; its pilot `wide128-live` lost too (+3.6% BD-rate
against `wide128` after 1500 steps, its ceiling unchanged), so the long run stays at M=64.

Channel layouts that are not a leading slice: the entropy-parameter network's input is
`concat(hyper 2M, context 2M)` and its output is the family's `parts x (M x per-part)` blocks
(`jaxlic.latent.families`: scales/means for the Gaussian, logits/means/scales of K for the
mixture). A 1x1 `skip` that the wide model needs where M no longer equals N (`g_s_1`) starts as
the identity on the old channels. Gains of the new channels start at the old channels' mean
gain at each rate point.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from jaxlic.entropy.gaussian import SCALE_MIN  # the new channels' first prior scale: the smallest
from jaxlic.errors import JaxlicError

#: Scale of the new latent channels' analysis weights: small latents cost few bits at first.
NEW_LATENT_SCALE = 0.02


def _blocks(parts: int, old_block: int, new_block: int) -> np.ndarray:
    """Old slots of an axis made of `parts` equal blocks, each widened from old to new."""
    return np.concatenate([p * new_block + np.arange(old_block) for p in range(parts)])


def _slots(
    path: tuple[str, ...], axis: int, old: int, new: int, m_old: int, m_new: int, family
) -> np.ndarray:
    """Where the old entries of one axis of one parameter go in the wide parameter."""
    name = path[0]
    if name.startswith("entropy_parameters_"):
        layers = family["layers"]
        kind = path[-1]
        first, last = name == layers[0], name == layers[-1]
        is_input = kind == "kernel" and axis == 2
        is_output = (kind == "kernel" and axis == 3) or kind == "bias"
        if first and is_input:  # concat(hyper 2M, context 2M)
            if old != 4 * m_old:
                raise ValueError(f"{'/'.join(path)}: input {old} is not 4 x M={m_old}")
            return _blocks(2, 2 * m_old, 2 * m_new)
        if last and is_output:  # the family's parameter blocks
            parts, per = family["parts"], family["per_part"]
            if old != parts * per * m_old:
                raise ValueError(f"{'/'.join(path)}: output {old} is not {parts} x {per} x M={m_old}")
            return _blocks(parts, per * m_old, per * m_new)
    return np.arange(old)  # a leading slice


def _family_layout(cfg, params: dict) -> dict:
    from jaxlic.latent import registry as latent_registry  # pylint: disable=g-import-not-at-top

    per_channel = latent_registry.family(cfg.entropy, cfg.K).params_per_channel
    # The order of `split` in jaxlic.latent.families: (part count, the part of the scales).
    known = {"gmm": (3, 2), "gaussian": (2, 0)}  # logits, means, scales / scales, means
    if cfg.entropy not in known:
        raise ValueError(f"no widening rule for entropy family {cfg.entropy!r}")
    parts, scales_part = known[cfg.entropy]
    layers = sorted(
        (k for k in params if k.startswith("entropy_parameters_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    return {"parts": parts, "per_part": per_channel // parts, "layers": layers, "scales_part": scales_part}


def widen_params(old: dict, fresh: dict, cfg_old, cfg_new, live: bool = False) -> dict:
    """The wide model's params: `fresh` (its initialisation) with `old` (the trained model's) in place.

    Args:
      old: nested params of the trained model (M = cfg_old.M).
      fresh: nested params of the wide model as initialised (M = cfg_new.M).
      live: the new latents start at their initialisation's full size (they round to non-zero
        values, so the synthesis' weights from them get gradients from the first step) and each
        new channel's prior is a copy of an old channel's (channel `c` takes that of `c - M_old`
        modulo M_old), which follows the rate through the hyperprior. The reconstruction is
        still the trained model's; the rate is not (the new channels cost bits). Untried in
        training (results/default/README.md, "Decision 3").
    """
    from flax import traverse_util  # pylint: disable=g-import-not-at-top

    m_old, m_new = int(cfg_old.M), int(cfg_new.M)
    if m_new <= m_old:
        raise ValueError(f"the new M ({m_new}) must be larger than the old ({m_old})")
    if dataclasses.replace(cfg_old, M=m_new) != cfg_new:
        raise ValueError("the two models differ in more than M")
    family = _family_layout(cfg_new, fresh)
    flat_old = traverse_util.flatten_dict(old)
    flat_new = {k: np.array(v, np.float32) for k, v in traverse_util.flatten_dict(fresh).items()}
    for path, new in flat_new.items():
        if path not in flat_old:
            if path[-2:] == ("skip", "kernel"):  # identity on the old channels (old: x itself)
                new[...] = 0.0
                n_out = new.shape[-1]
                new[0, 0, np.arange(min(m_old, n_out)), np.arange(min(m_old, n_out))] = 1.0
            elif path[-2:] == ("skip", "bias"):
                new[...] = 0.0
            else:
                raise ValueError(f"{'/'.join(path)} is new in the wide model and has no rule")
            continue
        value = np.asarray(flat_old[path], np.float32)
        if value.shape == new.shape:
            flat_new[path] = value.copy()
            continue
        if value.ndim != new.ndim:
            raise ValueError(f"{'/'.join(path)}: {value.shape} against {new.shape}")
        slots = [
            _slots(path, ax, o, n, m_old, m_new, family) if o != n else np.arange(o)
            for ax, (o, n) in enumerate(zip(value.shape, new.shape))
        ]
        if path[-1] == "log_gain":  # [rates, M]: new channels at the old ones' mean gain per rate
            new[...] = value.mean(axis=1, keepdims=True)
        if new.ndim == 4:  # conv kernel [h, w, in, out]: new inputs must not reach old outputs
            fresh_in = np.setdiff1d(np.arange(new.shape[2]), slots[2])
            new[:, :, fresh_in[:, None], slots[3][None, :]] = 0.0
        new[np.ix_(*slots)] = value
        flat_new[path] = new
    last_ep = family["layers"][-1]
    kernel, bias = flat_new[(last_ep, "kernel")], flat_new[(last_ep, "bias")]
    per = family["per_part"]
    block = per * m_new
    if live:  # each new channel's prior: a copy of an old channel's (same features, same columns)
        for part in range(family["parts"]):
            for c in range(m_old, m_new):
                src = part * block + ((c - m_old) % m_old) * per + np.arange(per)
                dst = part * block + c * per + np.arange(per)
                kernel[..., dst] = kernel[..., src]
                bias[dst] = bias[src]
        return traverse_util.unflatten_dict(flat_new)
    # The new channels' entropy parameters start as a fixed, narrowest prior at 0 (no weights
    # from the features): the small new latents cost almost nothing at first and their rate's
    # gradient does not reach the layers the old channels share.
    fresh_out = np.setdiff1d(np.arange(bias.shape[0]), _blocks(family["parts"], per * m_old, block))
    kernel[..., fresh_out] = 0.0
    bias[fresh_out] = 0.0
    bias[fresh_out[(fresh_out // block) == family["scales_part"]]] = SCALE_MIN
    # The new latent channels start small: the analysis layer that makes them, and the residual
    # branches of the block after it, give them little (see NEW_LATENT_SCALE).
    m_slots = np.arange(m_old, m_new)
    last = _last_analysis_conv(flat_new)
    for path, new in flat_new.items():
        if path[-1] != "kernel" or new.ndim != 4 or new.shape[-1] != m_new:
            continue
        if path[0].startswith("g_a_") and int(path[0][4:]) >= int(last[4:]):
            new[..., m_slots] *= NEW_LATENT_SCALE
    return traverse_util.unflatten_dict(flat_new)


def _last_analysis_conv(flat: dict) -> str:
    """Name of the last analysis layer with a kernel of its own (the one that makes y)."""
    names = sorted(
        {p[0] for p in flat if p[0].startswith("g_a_") and p[1] == "kernel"}, key=lambda k: int(k[4:])
    )
    return names[-1]


def widen_file(src: str, dst: str, m_new: int, seed: int = 0, live: bool = False) -> dict:
    """Writes the widened weights of `src` to `dst`; returns their metadata."""
    from jaxlic import weights, zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.models.compressor import Compressor  # pylint: disable=g-import-not-at-top
    from jaxlic.models.config import ModelConfig  # pylint: disable=g-import-not-at-top

    params, meta = weights.load(src)
    cfg_old = ModelConfig(**meta["config"])
    cfg_new = dataclasses.replace(cfg_old, M=m_new)
    fresh = zoo.init_variables(Compressor(cfg_new), seed)["params"]
    wide = widen_params(params, fresh, cfg_old, cfg_new, live=live)
    out = {
        k: v
        for k, v in meta.items()
        if k not in ("weights_id", "compact_check", "stored", "archived", "metrics")
    }
    out.update(
        M=m_new,
        config=dataclasses.asdict(cfg_new),
        widened_from={"file": str(src), "M": cfg_old.M, "live": live},
    )
    weights.save(dst, wide, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="trained weights file")
    ap.add_argument("dst", help="widened weights file to write")
    ap.add_argument("--M", type=int, required=True, help="the new number of latent channels")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new channels' initialisation")
    ap.add_argument(
        "--live", action="store_true", help="new channels at full size with copied priors (widen_params)"
    )
    args = ap.parse_args(argv)
    try:
        meta = widen_file(args.src, args.dst, args.M, args.seed, live=args.live)
    except (ValueError, OSError, JaxlicError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.dst}: {meta['model']} N={meta['N']} M={meta['widened_from']['M']} -> {args.M}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
