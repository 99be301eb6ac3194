"""The exact entropy-parameter path: integer networks from z_hat and y_hat to integer parameters.

A stream decodes only if the decoder rebuilds, bit for bit, every probability the encoder used.
With float32 networks computing the entropy parameters, another convolution implementation
(another CPU, jaxlib or a GPU) moves some parameter across a grid boundary and the range coder
desynchronises. Following Ballé, Johnston & Minnen 2019 ("Integer networks for data compression
with latent-variable models"), an *exact* model computes the hyper-synthesis h_s, the context
network and the entropy-parameter network in integer arithmetic:

* weights are integers, ``W_int = clip(round(W * 2^e_o), -511, 511)`` with one power-of-two
  exponent ``e_o`` per output channel (from ``frexp`` of the channel's largest weight, so that it
  uses 9 bits), biases ``round(b * 2^(f_in + e_o))`` at the accumulator's scale;
* activations are integers with ``f`` fractional bits (one ``f`` per activation point, fixed by
  calibration and stored in ``ModelConfig.exact``), clipped to 14 bits ``[-8192, 8191]``;
* accumulation is in int32 (convolutions as gathered taps times an integer matrix,
  `lax.dot_general` with int32 output), bounded below 2^31 by construction and checked at export
  (`overflow_bounds`);
* requantisation is a rounding shift (``(acc + 2^(s-1)) >> s``), the leaky ReLU's slope is
  41/4096 (``(x * 41 + 2048) >> 12`` on the negative side);
* the outputs are integer indices: means in units of 1/64, a scale level of the 256-level grid of
  `jaxlic.entropy.exact`, mixture weights as integers summing to 256 (no softmax).

The decoded anchors that the checkerboard's second pass sees are on the 1/64 grid, so they enter
the context network exactly. g_a, g_s and the post-processing stay float: a pixel off by one is
harmless, a desynchronised coder is not.

Training (quantisation-aware, straight-through): `fake_*` functions run the same computation in
float32 with the same roundings and clips, with identity gradients through every rounding. The
integer functions are what the coder (and the model's exact rate estimate) runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.errors import ModelError
from jaxlic.layers.subpixel import depth_to_space

__all__ = [
    "ACT_MIN",
    "ACT_MAX",
    "WEIGHT_MAX",
    "Layer",
    "Program",
    "program",
    "weight_exponents",
    "integer_weights",
    "run_integer",
    "run_fake",
    "overflow_bounds",
    "IntegerView",
]

ACT_BITS = 14
ACT_MIN, ACT_MAX = -(2 ** (ACT_BITS - 1)), 2 ** (ACT_BITS - 1) - 1
WEIGHT_MAX = 511  # 9-bit magnitudes (sign apart)
_EXP_MIN, _EXP_MAX = -8, 20  # clamp of the per-channel weight exponent
_SHIFT_MAX = 30
LRELU_NUM, LRELU_SHIFT = 41, 12  # slope 41/4096 = 0.0100098 (CompressAI's 0.01)
_PRE_CLIP = 2**20  # clip before the leaky ReLU's multiply (no int32 overflow in x * 41)
#: The context network's input: the decoded latents rounded to integers (and clipped to 14 bits
#: like every activation); h_s's input is z_hat on `Spec.f_z` bits, clipped alike.
CONTEXT_INPUT_BITS = 0


@dataclasses.dataclass(frozen=True)
class Layer:
    """One step of an exact network.

    Attributes:
      kind: "conv" (a stride-1 convolution), "d2s" (depth-to-space by `r`), "act" (the activation
        `act`, then requantisation to the next activation point), or "out" (the network's
        output: requantised and clipped like an activation, without a nonlinearity).
      path: for "conv", the parameter path (e.g. ("h_s_2", "conv")).
      kernel: for "conv", its kernel size.
      mask: for "conv", the name of its tap mask (`jaxlic.layers.context.MASKS`) or None.
      r: for "d2s", the factor.
      act: for "act", "lrelu" or "relu".
    """

    kind: str
    path: tuple = ()
    kernel: int = 1
    mask: str | None = None
    r: int = 1
    act: str = ""


@dataclasses.dataclass(frozen=True)
class Program:
    """A network as a list of `Layer`s; its activation points are the "act" and "out" steps."""

    layers: tuple[Layer, ...]

    @property
    def num_points(self) -> int:
        """Activation points, each with its own fractional bits."""
        return sum(layer.kind in ("act", "out") for layer in self.layers)


def program(layers: Sequence, prefix: str, *, output: bool) -> Program:
    """The `Program` of a list of model layers (`Compressor.h_s`, `entropy_parameters`).

    Args:
      layers: flax modules and activation functions, in order, as the model runs them (a list
        attribute of the model), or one module.
      prefix: their attribute name (`h_s`): layer i of a list has its parameters at
        `f"{prefix}_{i}"`, a single module at `prefix`.
      output: end with an "out" point (the network feeds another one); else the last conv's
        accumulator is the result (entropy parameters).

    Raises:
      ModelError: for a layer the exact path does not support.
    """
    from flax import linen as nn

    from jaxlic.layers.context import MaskedConv
    from jaxlic.layers.residual import leaky_relu
    from jaxlic.layers.subpixel import SubpelConv

    steps = []
    named = (
        [(prefix, layers)]
        if not isinstance(layers, list | tuple)
        else [(f"{prefix}_{i}", layer) for i, layer in enumerate(layers)]
    )
    for name, layer in named:
        if layer is leaky_relu:
            steps.append(Layer("act", act="lrelu"))
        elif layer is jax.nn.relu:
            steps.append(Layer("act", act="relu"))
        elif isinstance(layer, SubpelConv):
            steps += [Layer("conv", (name, "conv"), layer.kernel_size), Layer("d2s", r=layer.r)]
        elif isinstance(layer, MaskedConv):
            steps.append(Layer("conv", (name,), layer.kernel_size, layer.mask_type))
        elif isinstance(layer, nn.Conv) and tuple(layer.strides or (1, 1)) == (1, 1):
            steps.append(Layer("conv", (name,), layer.kernel_size[0]))
        else:
            raise ModelError(f"the exact entropy path does not support {type(layer).__name__} in {prefix}")
    if output:
        steps.append(Layer("out"))
    return Program(tuple(steps))


# --------------------------------------------------------------------------- weights


def _tap_mask(layer: Layer) -> np.ndarray | None:
    if layer.mask is None:
        return None
    from jaxlic.layers.context import MASKS

    return MASKS[layer.mask](layer.kernel)


def weight_exponents(kernel) -> jax.Array:
    """Per-output-channel exponent e_o with ``max|W[..., o]| * 2^e_o`` in [256, 512) (int32 [O]).

    ``frexp`` is exact, so numpy and every XLA backend agree.
    """
    xp = jnp if isinstance(kernel, jax.Array) else np
    amax = xp.max(xp.abs(kernel.reshape(-1, kernel.shape[-1])), axis=0)
    _, e = xp.frexp(amax)
    e = xp.where(amax > 0, 9 - e, 0)
    return xp.clip(e, _EXP_MIN, _EXP_MAX).astype(xp.int32)


def _pow2(e, xp):
    return xp.ldexp(xp.ones(e.shape, xp.float32), e.astype(xp.int32))


def integer_weights(kernel, bias, f_in: int, mask=None):
    """(W_int, b_int, e): the integer kernel and bias of a conv whose input has `f_in` bits.

    Works on numpy (the reference, int64) and jax arrays (int32) alike; every step is exact
    (multiplication by powers of two, round half to even, clip).
    """
    xp = jnp if isinstance(kernel, jax.Array) else np
    idt = xp.int32 if xp is jnp else np.int64
    if mask is not None:
        kernel = kernel * xp.asarray(mask, kernel.dtype)[:, :, None, None]
    e = weight_exponents(kernel)
    w = xp.clip(xp.round(kernel * _pow2(e, xp)), -WEIGHT_MAX, WEIGHT_MAX).astype(idt)
    b = xp.clip(xp.round(bias.astype(xp.float32) * _pow2(e + f_in, xp)), -(2.0**30), 2.0**30)
    return w, b.astype(idt), e


def rounding_shift(x, s):
    """round(x / 2^s) with halves up, for integer arrays and per-channel shifts s (may be <= 0)."""
    xp = jnp if isinstance(x, jax.Array) else np
    s = xp.clip(s, -_SHIFT_MAX, _SHIFT_MAX).astype(x.dtype)
    right = xp.maximum(s, 0)
    half = xp.where(s > 0, xp.left_shift(xp.ones_like(s), xp.maximum(s - 1, 0)), 0)
    return xp.left_shift(xp.right_shift(x + half, right), xp.maximum(-s, 0))


def _activate(x, act: str):
    xp = jnp if isinstance(x, jax.Array) else np
    if act == "relu":
        return xp.maximum(x, 0)
    if act == "lrelu":
        x = xp.clip(x, -_PRE_CLIP, _PRE_CLIP)
        neg = xp.right_shift(x * LRELU_NUM + (1 << (LRELU_SHIFT - 1)), LRELU_SHIFT)
        return xp.where(x >= 0, x, neg)
    return x


# --------------------------------------------------------------------------- integer execution


def _gather_taps(x, k: int, mask):
    """[B, H, W, C] -> [B, H, W, T*C]: the T used taps of a k x k SAME window, tap-major."""
    xp = jnp if isinstance(x, jax.Array) else np
    p = k // 2
    h, w = x.shape[1], x.shape[2]
    xpad = xp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    taps = [(i, j) for i in range(k) for j in range(k) if mask is None or mask[i, j]]
    return xp.concatenate([xpad[:, i : i + h, j : j + w, :] for i, j in taps], axis=-1), taps


def _int_conv(x, w_int, layer: Layer):
    mask = _tap_mask(layer)
    cols, taps = _gather_taps(x, layer.kernel, mask)
    wm = w_int[tuple(np.array(taps).T)] if taps else w_int.reshape(0, *w_int.shape[2:])
    wm = wm.reshape(-1, w_int.shape[-1])
    if isinstance(cols, jax.Array):
        return jax.lax.dot_general(
            cols, wm, (((3,), (0,)), ((), ())), preferred_element_type=jnp.int32
        ).astype(jnp.int32)
    return np.einsum("bhwk,ko->bhwo", cols, wm)


def _get(params, path):
    for key in path:
        params = params[key]
    return params


def run_integer(prog: Program, params, x, fracs: Sequence[int], f_in: int):
    """Runs `prog` in integer arithmetic.

    Args:
      prog: the network.
      params: the model's parameter tree (float; converted by `integer_weights`).
      x: integer input [B, H, W, C] with `f_in` fractional bits (jax int32 or numpy int64).
      fracs: fractional bits of each activation point of `prog`, in order.
      f_in: fractional bits of `x`.

    Returns:
      `(out, shifts)`: with an "out" point, the integer output at `fracs[-1]` bits and None;
      otherwise the last conv's int32 accumulator and its per-channel scale exponents
      ``f_in + e_o`` (the accumulator holds ``value * 2^(f_in + e_o)``).
    """
    fracs = list(fracs)
    f = f_in
    acc_bits = None
    for layer in prog.layers:
        if layer.kind == "conv":
            p = _get(params, layer.path)
            w, b, e = integer_weights(p["kernel"], p["bias"], f, _tap_mask(layer))
            x = _int_conv(x, w, layer) + b
            acc_bits = e + f
        elif layer.kind == "d2s":
            # Each conv channel has its own exponent: after the shuffle, the r * r channels of
            # one output channel sit at different sub-positions, so the bits move with the values.
            xp = jnp if isinstance(x, jax.Array) else np
            acc_bits = depth_to_space(xp.broadcast_to(acc_bits, x.shape), layer.r)
            x = depth_to_space(x, layer.r)
        else:  # "act" or "out": requantise to the next point, activate, clip
            f_next = fracs.pop(0)
            x = rounding_shift(x, acc_bits - f_next)
            x = _activate(x, layer.act if layer.kind == "act" else "")
            xp = jnp if isinstance(x, jax.Array) else np
            x = xp.clip(x, ACT_MIN, ACT_MAX)
            f, acc_bits = f_next, None
    if prog.layers[-1].kind == "out":
        return x, None
    return x, acc_bits


def overflow_bounds(prog: Program, params, fracs: Sequence[int], f_in: int, in_max: int) -> list[float]:
    """Worst-case |accumulator| of each conv of `prog` (numpy), for the export check (< 2^31).

    Args:
      in_max: the largest |input| of the network (integer units); activations are bounded by
        the clip.
    """
    fracs = list(fracs)
    f, amax, out = f_in, float(in_max), []
    for i, layer in enumerate(prog.layers):
        if layer.kind == "conv":
            p = _get(params, layer.path)
            w, b, e = integer_weights(np.asarray(p["kernel"]), np.asarray(p["bias"]), f, _tap_mask(layer))
            l1 = np.abs(w.reshape(-1, w.shape[-1]).astype(np.float64)).sum(0)
            nxt = next((la for la in prog.layers[i + 1 :] if la.kind in ("act", "out")), None)
            # the rounding shift adds half its divisor (the last conv: indices shift by >= 4 less)
            s = e + f - (fracs[0] if nxt is not None else 4)
            half = np.where(s > 0, 2.0 ** (np.clip(s, 1, _SHIFT_MAX) - 1), 0.0)
            out.append(float((l1 * amax + np.abs(b) + half).max()))
        elif layer.kind in ("act", "out"):
            f = fracs.pop(0)
            amax = float(max(-ACT_MIN, ACT_MAX))
    return out


# --------------------------------------------------------------------------- float (training)


def _ste(x, y):
    """y in the forward pass, the identity's gradient."""
    return x + jax.lax.stop_gradient(y - x)


def _fake_weights(kernel, bias, f_in, mask):
    if mask is not None:
        kernel = kernel * jnp.asarray(mask, kernel.dtype)[:, :, None, None]
    e = jax.lax.stop_gradient(weight_exponents(kernel))
    scale = _pow2(e, jnp)
    wq = jnp.clip(jnp.round(kernel * scale), -WEIGHT_MAX, WEIGHT_MAX) / scale
    bscale = _pow2(e + f_in, jnp)
    bq = jnp.round(bias * bscale) / bscale
    return _ste(kernel, wq), _ste(bias, bq), e


def _fake_requant(x, f_next: int, act: str):
    scale = np.float32(2.0**f_next)
    q = jnp.floor(x * scale + 0.5)
    if act == "relu":
        q = jnp.maximum(q, 0)
    elif act == "lrelu":
        q = jnp.clip(q, -_PRE_CLIP, _PRE_CLIP)
        q = jnp.where(q >= 0, q, jnp.floor(q * np.float32(LRELU_NUM / 2**LRELU_SHIFT) + 0.5))
    q = jnp.clip(q, ACT_MIN, ACT_MAX) / scale
    slope = 1.0 if act != "lrelu" else jnp.where(x >= 0, 1.0, 0.01)
    inside = (x * scale >= ACT_MIN) & (x * scale <= ACT_MAX + 1)
    grad_path = jnp.where(inside, x * slope, jax.lax.stop_gradient(x * slope))
    return _ste(grad_path, q)


def _float_conv(x, w, b, layer: Layer):
    """The float convolution of a "conv" step (stride 1, SAME), as the model runs it."""
    from jaxlic.layers import fastconv

    k = layer.kernel // 2
    dn = ("NHWC", "HWIO", "NHWC")
    return (
        fastconv.conv_general_dilated(x, w.astype(x.dtype), (1, 1), ((k, k), (k, k)), dimension_numbers=dn)
        + b
    )


def run_fake(prog: Program, params, x, fracs: Sequence[int], f_in: int):
    """`run_integer` in float32 with straight-through roundings (quantisation-aware training).

    `x` is the real-valued input (already on its grid); returns the real-valued output (with an
    "out" point) or the last conv's output, both differentiable in the parameters and in `x`.
    """
    fracs = list(fracs)
    f = f_in
    for layer in prog.layers:
        if layer.kind == "conv":
            p = _get(params, layer.path)
            w, b, _ = _fake_weights(p["kernel"], p["bias"], f, _tap_mask(layer))
            x = _float_conv(x, w, b, layer)
        elif layer.kind == "d2s":
            x = depth_to_space(x, layer.r)
        else:
            f = fracs.pop(0)
            x = _fake_requant(x, f, layer.act if layer.kind == "act" else "")
    return x


# --------------------------------------------------------------------------- the model's view


@dataclasses.dataclass(frozen=True)
class Spec:
    """Fractional bits of an exact model's activation points, as stored in `ModelConfig.exact`.

    Order: h_s's input (z_hat), h_s's points (its "out" last when it has a context network),
    then the entropy-parameter network's points. The context network's input has
    `CONTEXT_INPUT_BITS` (integers) and its output shares h_s's "out" bits.
    """

    fracs: tuple[int, ...]
    n_hyper: int

    @property
    def f_z(self) -> int:
        return self.fracs[0]

    @property
    def hyper(self) -> tuple[int, ...]:
        return self.fracs[1 : 1 + self.n_hyper]

    @property
    def f_cat(self) -> int:
        return self.hyper[-1]

    @property
    def params(self) -> tuple[int, ...]:
        return self.fracs[1 + self.n_hyper :]


class IntegerView:
    """A bound `Compressor` seen through its exact path (what the schedules call as `net`).

    `entropy_params(hyper, ctx)` and `context(y_hat)` take and return integers; the parameters
    are the entropy family's integer indices (`EntropyFamily.from_accumulator`).
    """

    def __init__(self, net):
        self.net = net
        self.latent = net.latent
        self.spec = net.exact_spec()
        self.params = net.variables["params"]

    def hyper(self, z_sym):
        """z's integer symbols ``round(z - medians)`` -> integer hyper features (with no context
        network, `(accumulator, bits)` of the entropy parameters).

        h_s's input is ``z_sym * 2^f + round(medians * 2^f)``: z_hat on `f` bits, from integers
        and a rounding of the medians (float32 parameters) that every machine does alike.
        """
        f = self.spec.f_z
        med = self.net.entropy_bottleneck.medians()
        med_int = jnp.round(med * np.float32(2.0**f)).astype(jnp.int32)
        # |z_sym| * 2^f stays below 2^30 (no int32 wraparound for any f <= 24); larger symbols
        # saturate the clip below all the same.
        lim = 2 ** min(20, 30 - f)
        z_sym = jnp.clip(jnp.asarray(z_sym, jnp.int32), -lim, lim)
        z_int = jnp.clip(jnp.left_shift(z_sym, f) + med_int, ACT_MIN, ACT_MAX)
        out, bits = run_integer(self.net.exact_programs()["h_s"], self.params, z_int, self.spec.hyper, f)
        return out if bits is None else (out, bits)

    def context(self, y_hat):
        """Decoded latents (float32, on the coder's grid) -> integer context features: the
        context network sees ``clip(round_half_even(y_hat), -8192, 8191)``."""
        f = CONTEXT_INPUT_BITS
        y_int = jnp.clip(jnp.round(y_hat), ACT_MIN, ACT_MAX).astype(jnp.int32)
        out, _ = run_integer(
            self.net.exact_programs()["context_prediction"], self.params, y_int, [self.spec.f_cat], f
        )
        return out

    def entropy_params(self, hyper, ctx=None):
        family = self.latent.family
        if ctx is None:  # no context network: h_s's accumulator is the parameters
            acc, bits = hyper
        else:
            x = jnp.concatenate([hyper, ctx], axis=-1)
            acc, bits = run_integer(
                self.net.exact_programs()["entropy_parameters"],
                self.params,
                x,
                self.spec.params,
                self.spec.f_cat,
            )
        return family.from_accumulator(acc, bits)


# --------------------------------------------------------------------------- calibration


def _probe(prog: Program, params, x) -> tuple[list[float], jax.Array]:
    """Runs `prog` in plain float, returning the largest |value| at each activation point and the
    output (the float model's own computation, for `calibrate`)."""
    peaks = []
    for layer in prog.layers:
        if layer.kind == "conv":
            p = _get(params, layer.path)
            w, mask = p["kernel"], _tap_mask(layer)
            if mask is not None:
                w = w * jnp.asarray(mask, w.dtype)[:, :, None, None]
            x = _float_conv(x, w, p["bias"], layer)
        elif layer.kind == "d2s":
            x = depth_to_space(x, layer.r)
        else:
            if layer.act == "lrelu":
                x = jax.nn.leaky_relu(x, 0.01)
            elif layer.act == "relu":
                x = jax.nn.relu(x)
            peaks.append(jnp.max(jnp.abs(x)))
    return peaks, x


def frac_bits(peak: float, headroom: float = 1.25) -> int:
    """The most fractional bits at which `headroom * peak` still fits the 14-bit activations."""
    peak = max(float(peak) * headroom, 2.0**-16)
    return int(np.clip(np.floor(np.log2(ACT_MAX / peak)), 0, 16))


def calibrate(net, y, z_hat) -> tuple[int, ...]:
    """Fractional bits of every activation point of a float model (`ModelConfig.exact`).

    Runs the float networks on latents of sample images and gives each point the most bits at
    which its largest value (with 25% headroom) fits 14 bits. Call through
    `model.apply(variables, y, z_hat, method=calibrate)`.

    Args:
      net: the bound float `Compressor`.
      y: latents [B, h, w, M] of sample images (as `analysis` gives them).
      z_hat: their rounded hyper-latents (integers plus the medians).
    """
    params = net.variables["params"]
    progs = net.exact_programs()
    peaks_h, hyper = _probe(progs["h_s"], params, z_hat)
    fracs = [frac_bits(jnp.max(jnp.abs(z_hat)))]
    if "context_prediction" not in progs:
        return tuple(fracs + [frac_bits(p) for p in peaks_h])
    from jaxlic.layers.context import anchor_mask

    amask = anchor_mask(y.shape[1], y.shape[2], y.dtype)
    y_hat = jnp.round(y) * amask
    (peak_c,), ctx = _probe(progs["context_prediction"], params, y_hat)
    ctx = ctx * (1 - amask)
    peaks_e, _ = _probe(progs["entropy_parameters"], params, jnp.concatenate([hyper, ctx], -1))
    f_cat = frac_bits(jnp.maximum(peaks_h[-1], peak_c))
    return tuple(fracs + [frac_bits(p) for p in peaks_h[:-1]] + [f_cat] + [frac_bits(p) for p in peaks_e])


# --------------------------------------------------------------------------- export


def snap_params(programs: dict, params, spec: Spec, f_inputs: dict) -> dict:
    """Params whose exact-path kernels and biases sit on their integer grids.

    The snapped values give the same integer network (the largest weight of a channel stays
    below ``512 * 2^-e``, so its exponent is unchanged), and they are stored exactly by the
    float16 of compact weights files. Other parameters are returned as they are.

    Args:
      programs: `Compressor.exact_programs()`.
      params: the (numpy) parameter tree.
      spec: the model's `Spec`.
      f_inputs: fractional bits of each network's input: {"h_s": ..., "context_prediction": ...,
        "entropy_parameters": ...}.
    """
    out = jax.tree_util.tree_map(lambda a: np.array(a, np.float32), params)
    points = {
        "h_s": list(spec.hyper),
        "context_prediction": [spec.f_cat],
        "entropy_parameters": list(spec.params),
    }
    for name, prog in programs.items():
        f, fracs = f_inputs[name], list(points[name])
        for layer in prog.layers:
            if layer.kind == "conv":
                p = _get(out, layer.path)
                w, b, e = integer_weights(p["kernel"], p["bias"], f, _tap_mask(layer))
                snapped = w.astype(np.float64) * np.ldexp(1.0, -e.astype(np.int64))
                if layer.mask is not None:  # masked taps keep their (unused) values
                    m = _tap_mask(layer)[:, :, None, None].astype(bool)
                    snapped = np.where(m, snapped, p["kernel"])
                p["kernel"] = snapped.astype(np.float32)
                p["bias"] = (b.astype(np.float64) * np.ldexp(1.0, -(e.astype(np.int64) + f))).astype(
                    np.float32
                )
            elif layer.kind in ("act", "out"):
                f = fracs.pop(0)
    return out
