"""An independent pure-numpy int64 reference of the exact entropy-parameter path.

Re-derived from the rules documented in `jaxlic.latent.exact` (module docstring and comments),
without calling its integer code (`run_integer`, `integer_weights`, `rounding_shift`) or
`jaxlic.latent.indices`:

* per output channel ``o`` an exponent ``e_o = 9 - frexp(max|W[..., o]|)[1]``, clamped to
  ``[-8, 20]`` (0 for an all-zero channel), taken after the tap mask;
* ``W_int = clip(round_half_even(W * 2^e_o), -511, 511)``, ``b_int = round_half_even(b *
  2^(f_in + e_o))``;
* a convolution is a sum over its (unmasked) taps of the shifted, zero-padded input times the
  tap's integer matrix; its accumulator holds ``value * 2^(f_in + e_o)``, element by element
  (a depth-to-space moves each element's exponent with it);
* requantisation ``floor((x + 2^(s-1)) / 2^s)`` (``s <= 0``: ``x * 2^-s``), ``s`` clipped to
  ``[-30, 30]``; leaky ReLU ``x`` or ``floor((x * 41 + 2048) / 4096)`` after clipping ``x`` to
  ``+-2^20``; every activation clipped to ``[ACT_MIN, ACT_MAX]`` (the format's activation
  width, like ``WEIGHT_MAX`` the one thing taken from `jaxlic.latent.exact`);
* h_s's input ``clip(z_sym * 2^f + round_half_even(medians * 2^f), ACT_MIN, ACT_MAX)``, exactly
  for any int32 z_sym; the context network's ``clip(round_half_even(y_hat), ACT_MIN, ACT_MAX)``
  (0 fractional bits);
* checkerboard pass 0 sees zero context, pass 1 the context of the decoded anchors, zeroed at
  the anchors;
* indices: ``mean64 = clip(roundshift(acc, bits - 6), +-2^23)``; ``level`` = the number of
  grid midpoints strictly below ``acc / 2^bits``; mixture weights from ``logit16 =
  clip(roundshift(acc, bits - 4), +-2^24)`` by `jaxlic.entropy.exact.weights_from_logits`
  (numpy). `jaxlic.entropy.exact` is the shared ground truth of the grids and tables.

Everything is int64 and every value that the int32 path holds is checked to lie in the int32
range (`Int32Overflow` otherwise): an int32 wraparound in the jax path shows up either as such
an error here or as a difference from this reference.
"""

from __future__ import annotations

import numpy as np

from jaxlic.entropy import exact as exact_entropy
from jaxlic.latent.exact import ACT_MAX, ACT_MIN, WEIGHT_MAX  # the format's widths, nothing else
from jaxlic.layers.context import MASKS

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EXP_MIN, EXP_MAX = -8, 20
SHIFT_MAX = 30
PRE_CLIP = 2**20
MEAN_BITS, MEAN_MAX = 6, 2**23
LOGIT_BITS, LOGIT_MAX = 4, 2**24


class Int32Overflow(AssertionError):
    """A value that the int32 path holds left the int32 range."""


def check_int32(x, what: str) -> np.ndarray:
    """`x` (int64) unchanged; raises `Int32Overflow` if any element leaves the int32 range."""
    x = np.asarray(x)
    assert x.dtype == np.int64, (what, x.dtype)
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise Int32Overflow(f"{what}: values in [{x.min()}, {x.max()}] leave the int32 range")
    return x


def round_half_even(x) -> np.ndarray:
    """Round half to even of float64 values that are exact products of float32 by powers of 2."""
    return np.round(np.asarray(x, np.float64)).astype(np.int64)


def channel_exponents(kernel: np.ndarray) -> np.ndarray:
    """Per-output-channel weight exponents (int64 [O]), from `np.frexp` of the largest |weight|."""
    amax = np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0).astype(np.float64)
    _, exponent = np.frexp(amax)
    e = np.where(amax > 0, 9 - exponent, 0)
    return np.clip(e, EXP_MIN, EXP_MAX).astype(np.int64)


def quantize_conv(kernel, bias, f_in: int, mask=None):
    """(W_int [k, k, I, O], b_int [O], e [O]) of a float32 conv whose input has `f_in` bits."""
    kernel = np.asarray(kernel, np.float64)
    if mask is not None:
        kernel = kernel * np.asarray(mask, np.float64)[:, :, None, None]
    e = channel_exponents(kernel)
    w = np.clip(round_half_even(kernel * np.exp2(e)), -WEIGHT_MAX, WEIGHT_MAX)
    b = check_int32(round_half_even(np.asarray(bias, np.float64) * np.exp2(f_in + e)), "bias")
    return w, b, e


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, mask=None) -> np.ndarray:
    """SAME stride-1 convolution as an explicit sum over kernel taps (int64)."""
    k = w.shape[0]
    p = k // 2
    _, h, wd, _ = x.shape
    xpad = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    acc = np.zeros(x.shape[:3] + (w.shape[-1],), np.int64)
    for i in range(k):
        for j in range(k):
            if mask is not None and not mask[i, j]:
                continue
            acc += np.matmul(xpad[:, i : i + h, j : j + wd, :], w[i, j])
    return check_int32(acc + b, "conv accumulator")


def depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """PyTorch PixelShuffle: input channel ``c r^2 + i r + j`` -> channel c at sub-position (i, j)."""
    bsz, h, w, c = x.shape
    co = c // (r * r)
    out = np.empty((bsz, h * r, w * r, co), x.dtype)
    for i in range(r):
        for j in range(r):
            out[:, i::r, j::r, :] = x[..., np.arange(co) * r * r + i * r + j]
    return out


def roundshift(x: np.ndarray, s) -> np.ndarray:
    """``floor((x + 2^(s-1)) / 2^s)`` for s > 0, ``x * 2^-s`` otherwise; s clipped to [-30, 30]."""
    s = np.broadcast_to(np.clip(np.asarray(s, np.int64), -SHIFT_MAX, SHIFT_MAX), x.shape)
    pos = np.maximum(s, 0)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    up = check_int32(x + half, "rounding shift (x + half)")
    out = np.where(
        s > 0,
        np.floor_divide(up, np.left_shift(np.int64(1), pos)),
        x * np.left_shift(np.int64(1), np.maximum(-s, 0)),
    )
    return check_int32(out, "rounding shift result")


def leaky_relu(x: np.ndarray) -> np.ndarray:
    """``x`` for x >= 0, else ``floor((x * 41 + 2048) / 4096)``, after clipping x to +-2^20."""
    x = np.clip(x, -PRE_CLIP, PRE_CLIP)
    return np.where(x >= 0, x, np.floor_divide(check_int32(x * 41 + 2048, "leaky ReLU"), 4096))


def run(prog, params, x: np.ndarray, fracs, f_in: int):
    """Runs a `jaxlic.latent.exact.Program` (used only as the list of layers) in int64.

    Returns the output at `fracs[-1]` bits (a program ending in "out"), or the last conv's
    accumulator and its per-element bits (same shape).
    """
    fracs = list(fracs)
    f, bits = f_in, None
    x = check_int32(np.asarray(x, np.int64), "network input")
    for layer in prog.layers:
        if layer.kind == "conv":
            p = params
            for key in layer.path:
                p = p[key]
            mask = MASKS[layer.mask](layer.kernel) if layer.mask else None
            w, b, e = quantize_conv(p["kernel"], p["bias"], f, mask)
            x = conv(x, w, b, mask)
            bits = np.broadcast_to(f + e, x.shape).copy()
        elif layer.kind == "d2s":
            x, bits = depth_to_space(x, layer.r), depth_to_space(bits, layer.r)
        elif layer.kind in ("act", "out"):
            f_next = fracs.pop(0)
            x = roundshift(x, bits - f_next)
            if layer.act == "lrelu":
                x = leaky_relu(x)
            elif layer.act == "relu":
                x = np.maximum(x, 0)
            x = np.clip(x, ACT_MIN, ACT_MAX)
            f, bits = f_next, None
        else:
            raise ValueError(f"unknown layer kind {layer.kind}")
    assert not fracs, "unused activation points"
    return x if prog.layers[-1].kind == "out" else (x, bits)


def scale_levels(acc: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Number of scale-grid midpoints strictly below ``acc / 2^bits`` (thresholds of
    `jaxlic.entropy.exact.scale_thresholds`, exact in int64)."""
    levels = np.empty(acc.shape, np.int64)
    for b in np.unique(bits):
        thr = exact_entropy.scale_thresholds([int(b)])[0]  # raises outside [0, 30]
        sel = bits == b
        levels[sel] = np.searchsorted(thr, acc[sel], side="left")  # count of thr < acc
    return levels


def mean_indices(acc, bits):
    return np.clip(roundshift(acc, bits - MEAN_BITS), -MEAN_MAX, MEAN_MAX)


def mixture_weights(acc, bits):
    logit16 = np.clip(roundshift(acc, bits - LOGIT_BITS), -LOGIT_MAX, LOGIT_MAX)
    return exact_entropy.weights_from_logits(logit16).astype(np.int64)


def anchors(h: int, w: int) -> np.ndarray:
    """[h, w] bool: the checkerboard's anchors, (i + j) even."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


class Reference:
    """The exact path of an exact `Compressor` with given variables, in numpy int64.

    Args:
      model: the `Compressor` (its `cfg.exact`, entropy family and `exact_programs` layer lists).
      variables: `{"params": ...}` (float32 parameters).
    """

    def __init__(self, model, variables):
        cfg = model.cfg
        assert cfg.exact, "not an exact model"
        self.params = _to_numpy(variables["params"])
        self.progs = model.apply(variables, method="exact_programs")
        self.entropy, self.K = cfg.entropy, cfg.K
        n_hyper = sum(layer.kind in ("act", "out") for layer in self.progs["h_s"].layers)
        fracs = tuple(cfg.exact)
        self.f_z, self.hyper_fracs, self.param_fracs = fracs[0], fracs[1 : 1 + n_hyper], fracs[1 + n_hyper :]
        self.uses_context = "context_prediction" in self.progs
        self.medians = np.asarray(self.params["entropy_bottleneck"]["quantiles"], np.float32)[:, 0, 1]

    def network_bits(self) -> dict[str, tuple[int, list[int]]]:
        """Per exact network: the fractional bits of its input, and those after each of its
        activation (and output) points, in order (a fresh list each call)."""
        return {
            "h_s": (self.f_z, list(self.hyper_fracs)),
            "context_prediction": (0, [self.hyper_fracs[-1]]),
            "entropy_parameters": (self.hyper_fracs[-1], list(self.param_fracs)),
        }

    # ------------------------------------------------------------------ networks
    def hyper(self, z_sym):
        """z's integer symbols [B, h, w, N] -> hyper features (or (acc, bits) without context)."""
        f = self.f_z
        med = round_half_even(self.medians.astype(np.float64) * 2.0**f)
        z_int = np.clip(np.asarray(z_sym, np.int64) * 2**f + med, ACT_MIN, ACT_MAX)  # |z_sym| 2^f < 2^55
        return run(self.progs["h_s"], self.params, z_int, self.hyper_fracs, f)

    def context(self, y_hat):
        """Decoded latents (float) -> context features at the hyper output's bits."""
        y_int = np.clip(
            round_half_even(np.clip(np.asarray(y_hat, np.float64), -(2**40), 2**40)), ACT_MIN, ACT_MAX
        )
        return run(self.progs["context_prediction"], self.params, y_int, [self.hyper_fracs[-1]], 0)

    def entropy_params(self, hyper, ctx=None) -> dict:
        """Integer indices: "level", and "mean64" / "weight256" as the family has them."""
        if ctx is None:
            acc, bits = hyper
        else:
            x = np.concatenate([hyper, ctx], axis=-1)
            acc, bits = run(
                self.progs["entropy_parameters"], self.params, x, self.param_fracs, self.hyper_fracs[-1]
            )
        return self.indices(acc, bits)

    def indices(self, acc, bits) -> dict:
        """The family's split of the accumulator and its integer indices."""
        if self.entropy == "scale":
            return {"level": scale_levels(acc, bits)}
        if self.entropy == "gaussian":
            m = acc.shape[-1] // 2  # CompressAI's order: scales, then means
            return {
                "level": scale_levels(acc[..., :m], bits[..., :m]),
                "mean64": mean_indices(acc[..., m:], bits[..., m:]),
            }
        assert self.entropy == "gmm", self.entropy
        c = acc.shape[-1] // 3
        shape = acc.shape[:-1] + (c // self.K, self.K)
        part = [
            (acc[..., i * c : (i + 1) * c].reshape(shape), bits[..., i * c : (i + 1) * c].reshape(shape))
            for i in range(3)
        ]
        return {
            "weight256": mixture_weights(*part[0]),
            "mean64": mean_indices(*part[1]),
            "level": scale_levels(*part[2]),
        }

    # ------------------------------------------------------------------ schedules
    def pass_params(self, k: int, hyper, y_hat=None) -> dict:
        """Indices of coding pass `k`: the parameters without a context network, else the
        checkerboard's pass 0 (zero context) or pass 1 (the context of the anchors of `y_hat`,
        zeroed at the anchors; `y_hat` off the anchors is ignored)."""
        if not self.uses_context:
            return self.entropy_params(hyper)
        if k == 0:
            return self.entropy_params(hyper, np.zeros_like(hyper))
        a = anchors(*hyper.shape[1:3])[None, :, :, None]
        y_anchor = np.where(a, np.asarray(y_hat, np.float32), np.float32(0))
        return self.entropy_params(hyper, np.where(a, 0, self.context(y_anchor)))

    def passes(self, z_sym, y_hat=None) -> list[dict]:
        """Indices of every coding pass (one without a context network, two with one)."""
        hyper = self.hyper(z_sym)
        return [self.pass_params(k, hyper, y_hat) for k in range(2 if self.uses_context else 1)]

    def positions(self, h: int, w: int) -> list[np.ndarray]:
        """[h, w] bool positions coded by each pass."""
        if not self.uses_context:
            return [np.ones((h, w), bool)]
        a = anchors(h, w)
        return [a, ~a]

    def encode(self, y, z_sym) -> tuple[list[bytes], np.ndarray]:
        """The y sections of a stream and the decoded latents, from reference indices alone.

        Symbols are the coder's: ``round(y - mean64 / 64)`` in float32 (Gaussian families,
        decoded as that plus the mean) or ``round(y)`` (mixture); the CDFs are
        `jaxlic.entropy.exact`'s.
        """
        y = np.asarray(y, np.float32)
        hyper = self.hyper(z_sym)
        y_hat = np.zeros(y.shape, np.float32)
        sections = []
        for k, sel in enumerate(self.positions(*y.shape[1:3])):
            p = {key: v[0][sel] for key, v in self.pass_params(k, hyper, y_hat).items()}
            y_sel = y[0][sel]
            if "weight256" in p:
                sym = np.round(y_sel).astype(np.int32)
                rows = [p[key].reshape(-1, self.K) for key in ("weight256", "mean64", "level")]
                sections.append(exact_entropy.encode_mixture(sym.reshape(-1), *rows))
                y_hat[0][sel] = sym
            else:
                mean = p["mean64"].astype(np.float32) * np.float32(2.0**-MEAN_BITS) if "mean64" in p else 0
                sym = np.round(y_sel - mean).astype(np.int32)
                sections.append(exact_entropy.encode_gaussian(sym, p["level"]))
                y_hat[0][sel] = sym.astype(np.float32) + mean
        return sections, y_hat


def _to_numpy(tree):
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def worst_case_accumulators(model, variables, in_max: int = -ACT_MIN) -> dict[str, list[float]]:
    """Independent bound of |accumulator + half| of every conv of each exact network, with
    inputs bounded by `in_max` and activations by the 12-bit clip (float64, exact here)."""
    ref = Reference(model, variables)
    bits_of = ref.network_bits()
    out = {}
    for name, prog in ref.progs.items():
        (f, fracs), amax, bounds = bits_of[name], float(in_max), []
        pending = None
        for layer in prog.layers:
            if layer.kind == "conv":
                p = ref.params
                for key in layer.path:
                    p = p[key]
                mask = MASKS[layer.mask](layer.kernel) if layer.mask else None
                w, b, e = quantize_conv(p["kernel"], p["bias"], f, mask)
                pending = (np.abs(w).reshape(-1, w.shape[-1]).sum(0) * amax + np.abs(b), f + e)
            elif layer.kind in ("act", "out"):
                f = fracs.pop(0)
                acc, bits = pending
                s = np.clip(bits - f, -SHIFT_MAX, SHIFT_MAX)
                bounds.append(float((acc + np.where(s > 0, np.exp2(s - 1), 0)).max()))
                pending, amax = None, float(-ACT_MIN)
        if pending is not None:  # the entropy parameters: shifts by bits - 6 and bits - 4 at least
            acc, bits = pending
            s = np.clip(bits - LOGIT_BITS, -SHIFT_MAX, SHIFT_MAX)
            bounds.append(float((acc + np.where(s > 0, np.exp2(s - 1), 0)).max()))
        out[name] = bounds
    return out
