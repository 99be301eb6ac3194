"""A drop-in `lax.conv_general_dilated` whose weight gradient is fast on XLA:CPU.

XLA lowers the weight gradient of a convolution to another convolution whose "features" are the
batch and whose window is the whole feature map. XLA:CPU runs that shape badly (about 6x the
forward time for a 3x3 128->128 conv over 8 x 128 x 128), and the cost grows faster than the batch.

The weight gradient is a sum over output pixels, so it can be computed piece by piece: one image at
a time, or a band of output rows at a time, each piece holding about `TARGET_PIXELS` output pixels.
Each piece is a small convolution, which XLA:CPU runs near its forward speed. `python -m
eval.conv_grad` times both on any machine; the numbers measured here are in docs/RESULTS.md and
results/conv_grad.json.

Only the backward pass changes: the forward pass and the input gradient are XLA's own, and the
result equals XLA's gradient up to float summation order. The pieces are unrolled, not looped: a
`lax.scan` over them ran 70x slower on XLA:CPU.

The split is used when JAX's default backend is the CPU; GPUs and TPUs get the plain convolution.
`JAXLIC_CONV_WGRAD=xla` turns the split off, and `=split` forces it on any backend (tests).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp

# Convolutions with fewer output channels keep XLA's weight gradient: for the 128->12 output conv
# of g_s, XLA's is faster than the pieces (`python -m eval.conv_grad`, docs/RESULTS.md).
MIN_OUT_FEATURES = 32

# Output pixels per piece of the weight gradient. From 1024 to 4096 ran at the same speed on the
# 2-core CPU; larger pieces are slower, smaller ones add compile time.
TARGET_PIXELS = 2048

_NHWC = jax.lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))


def split_enabled() -> bool:
    """Whether convolutions compute their weight gradient piece by piece (see module doc)."""
    mode = os.environ.get("JAXLIC_CONV_WGRAD", "auto")
    if mode not in ("auto", "xla", "split"):
        raise ValueError(f"JAXLIC_CONV_WGRAD={mode!r}; expected auto, xla or split")
    return mode == "split" or (mode == "auto" and jax.default_backend() == "cpu")


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kw,
):
    """`jax.lax.conv_general_dilated` with a piecewise weight gradient where it is supported.

    Supported: NHWC/HWIO, explicit padding or "VALID", no dilation, no feature groups, at least
    `MIN_OUT_FEATURES` output channels. Anything else, or a backend other than the CPU, is passed
    to `jax.lax.conv_general_dilated` unchanged.
    """
    plain = functools.partial(
        jax.lax.conv_general_dilated,
        window_strides=window_strides,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kw,
    )
    if not split_enabled() or kw or feature_group_count != 1 or lhs.ndim != 4:
        return plain(lhs, rhs)
    if any(d not in (None, 1) for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ())):
        return plain(lhs, rhs)
    dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if dn != _NHWC:
        return plain(lhs, rhs)
    if isinstance(padding, str):
        if padding != "VALID":
            return plain(lhs, rhs)
        padding = ((0, 0), (0, 0))
    strides = tuple(int(s) for s in window_strides)
    padding = tuple((int(a), int(b)) for a, b in padding)
    if num_pieces(lhs.shape, rhs.shape, strides, padding) <= 1:
        return plain(lhs, rhs)
    return _conv(lhs, rhs, (strides, padding, precision))


def _valid_conv(x, w, strides, precision):
    return jax.lax.conv_general_dilated(x, w, strides, "VALID", dimension_numbers=_NHWC, precision=precision)


def _pad(x, padding):
    (pt, pb), (pl, pr) = padding
    return jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def _out_hw(x_shape, w_shape, spec):
    (sh, sw), ((pt, pb), (pl, pr)), _ = spec
    return ((x_shape[1] + pt + pb - w_shape[0]) // sh + 1, (x_shape[2] + pl + pr - w_shape[1]) // sw + 1)


def _pieces(batch: int, out_h: int, out_w: int) -> list[tuple[int, int, int, int]]:
    """(image start, image stop, row start, row stop) of output pieces of ~TARGET_PIXELS each."""
    per_image = out_h * out_w
    if batch == 0 or per_image == 0:
        return []
    if per_image >= TARGET_PIXELS:
        rows = max(1, TARGET_PIXELS // max(out_w, 1))
        bands = [(r, min(r + rows, out_h)) for r in range(0, out_h, rows)]
        return [(b, b + 1, r0, r1) for b in range(batch) for r0, r1 in bands]
    group = max(1, TARGET_PIXELS // max(per_image, 1))
    group = max(d for d in range(1, min(group, batch) + 1) if batch % d == 0)
    return [(b, b + group, 0, out_h) for b in range(0, batch, group)]


def _padded_conv(x, w, strides, padding, precision):
    return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, w, spec):
    # The same convolution op as jax.lax's: forward values are identical to the plain path.
    return _padded_conv(x, w, *spec)


def _conv_fwd(x, w, spec):
    return _conv(x, w, spec), (x, w)


def _conv_bwd(spec, res, g):
    x, w = res
    strides, padding, precision = spec
    dx = jax.vjp(lambda x_: _padded_conv(x_, w, strides, padding, precision), x)[1](g)[0]
    xp = _pad(x, padding)
    kh, sh = w.shape[0], strides[0]
    dw = None
    for b0, b1, r0, r1 in _pieces(x.shape[0], g.shape[1], g.shape[2]):
        xs = xp[b0:b1, r0 * sh : (r1 - 1) * sh + kh]
        part = jax.vjp(lambda w_: _valid_conv(xs, w_, strides, precision), w)[1](g[b0:b1, r0:r1])[0]
        dw = part if dw is None else dw + part
    return dx, dw


_conv.defvjp(_conv_fwd, _conv_bwd)


def num_pieces(x_shape, w_shape, strides, padding) -> int:
    """How many pieces the weight gradient of this convolution is split into (<= 1: not split)."""
    if w_shape[-1] < MIN_OUT_FEATURES:
        return 1
    spec = (tuple(strides), tuple(tuple(p) for p in padding), None)
    return len(_pieces(x_shape[0], *_out_hw(x_shape, w_shape, spec)))


__all__ = ["MIN_OUT_FEATURES", "TARGET_PIXELS", "conv_general_dilated", "num_pieces", "split_enabled"]
