"""Context schedules: the order in which the latent y is decoded, written once per schedule.

A schedule owns, for its decoding order, the training pass, the exact evaluation pass (the values
and rates the range coder produces), the parameter functions the host jits, and the host-side
encode/decode loop. Training, `Compressor.eval_latents` and the coder all run the *same* pass
functions, so the encoder, the decoder and the model's rate estimate cannot drift apart.

Schedules:
  * `NoContext`: every position's parameters come from the hyperprior alone; one section.
  * `Checkerboard`: He et al. 2021, "Checkerboard Context Model for Efficient Learned Image
    Compression". Pass 0 codes the anchors ((i + j) even) from the hyperprior alone (zero
    context); pass 1 codes the non-anchors with the context of the decoded anchors. Two
    sections, both passes parallel.
  * `Serial`: Minnen et al. 2018, "Joint Autoregressive and Hierarchical Priors for Learned Image
    Compression". A 5x5 causal masked convolution; the coder visits positions in raster order,
    one jitted parameter step each, in one section. As in CompressAI, the evaluation pass takes
    the context of round(y) in parallel, while real decoding has the context of
    round(y - mu) + mu; the two differ slightly.

The jax-side methods take `net`, the bound `Compressor`, through three methods:
`net.entropy_params(hyper, ctx=None)` (split parameters; no `ctx`: the hyper features are the raw
parameters), `net.context(y_hat)` (the masked convolution) and `net.context_at_patch(patch)` (its
output at the centre of a patch). The host-side methods take `run`, which provides
`run.params(i, *args)` (the i-th of `param_functions`, jitted, as numpy) and `run.coded(fn, *args)`
(range coding, timed apart from the network).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.entropy.quantize import rounder
from jaxlic.errors import BitstreamError, ModelError
from jaxlic.latent.families import EntropyFamily
from jaxlic.layers.context import anchor_mask

__all__ = ["ContextSchedule", "NoContext", "Checkerboard", "Serial"]


def _select(p: dict, sel: np.ndarray) -> dict:
    """Parameters [1, h, w, ...] at the positions `sel` [h, w] -> arrays [n, ...]."""
    return {k: v[0][sel] for k, v in p.items()}


@dataclasses.dataclass(frozen=True)
class ContextSchedule:
    """Base class of the context schedules (see the module docstring)."""

    #: Mask type of the context network (`jaxlic.layers.context.MaskedConv`); None: no context
    #: network (and no entropy-parameter network: the hyper-synthesis predicts the parameters).
    mask_type: ClassVar[str | None] = None
    #: Kernel size of the context network.
    kernel_size: ClassVar[int] = 5
    #: Stream sections that carry y.
    num_sections: ClassVar[int] = 1

    def hyper_channels(self, M: int, family: EntropyFamily) -> int:
        """Output channels of the hyper-synthesis: the parameters themselves without a context
        network, else its hyper half of the entropy-parameter network's input (as wide as the
        context features, 2M, as in Minnen et al. 2018)."""
        return M * family.params_per_channel if self.mask_type is None else 2 * M

    # ---------------------------------------------------------------- jax (traced in the model)
    def train(self, net, family: EntropyFamily, hyper, y, y_noisy, mixed: bool):
        """Training pass.

        Args:
          net: the bound `Compressor`.
          family: the entropy family.
          hyper: hyper-synthesis output.
          y: latents.
          y_noisy: y plus uniform noise (the rate term is always measured on it).
          mixed: "mixed" training quantisation: straight-through rounding for the decoder and the
            context inputs; otherwise noise everywhere (CompressAI's training).

        Returns:
          `(p, y_dec)`: the parameters of y's distribution and the input of the synthesis.
        """
        raise NotImplementedError

    def evaluate(self, net, family: EntropyFamily, hyper, y, rounding):
        """Exact evaluation pass: the coder's values.

        Args:
          net, family, hyper, y: as in `train`.
          rounding: "round", "ste" or a rounding function (see `EntropyFamily.quantize`).

        Returns:
          `(p, y_hat, y_sent)`: parameters, the decoded latents, and the values whose rate the
          coder pays (they differ only for the serial schedule's parallel estimate).
        """
        raise NotImplementedError

    def param_functions(self, family: EntropyFamily) -> tuple:
        """Functions `f(net, *args) -> coding parameters` the host jits, in the order `run.params`
        indexes them."""
        raise NotImplementedError

    # ---------------------------------------------------------------- host (numpy)
    def encode(self, run, family: EntropyFamily, hyper, y: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """Latents y [1, h, w, M] -> (the y sections, y_hat as the decoder will decode it)."""
        return self._code(run, family, hyper, y.shape, y=y)

    def decode(self, run, family: EntropyFamily, hyper: np.ndarray, sections, y_shape) -> np.ndarray:
        """The y sections -> decoded latents y_hat [1, h, w, M] (float32)."""
        if len(sections) != self.num_sections:
            raise BitstreamError(f"expected {self.num_sections} y sections, found {len(sections)}")
        return self._code(run, family, hyper, tuple(y_shape), sections=sections)

    def _code(self, run, family, hyper, y_shape, *, y=None, sections=None):
        """Encodes (`y` given: returns the sections and y_hat) or decodes (`sections` given:
        returns y_hat).

        One function for both directions keeps the encoder's and the decoder's order of
        operations the same by construction.
        """
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class NoContext(ContextSchedule):
    """Parameters from the hyperprior alone (Ballé et al. 2018; Minnen et al. 2018's mean-scale)."""

    def train(self, net, family, hyper, y, y_noisy, mixed):
        p = net.entropy_params(hyper)
        return p, family.quantize(y, p, "ste") if mixed else y_noisy

    def evaluate(self, net, family, hyper, y, rounding):
        p = net.entropy_params(hyper)
        y_hat = family.quantize(y, p, rounding)
        return p, y_hat, y_hat

    def param_functions(self, family):
        return (lambda net, hyper: family.coding_params(net.entropy_params(hyper)),)

    def _code(self, run, family, hyper, y_shape, *, y=None, sections=None):
        p = run.params(0, hyper)
        sel = np.ones(y_shape[1:3], bool)
        y_hat = np.zeros(y_shape, np.float32)
        if y is not None:
            data, y_hat[0][sel] = run.coded(family.encode, y[0][sel], _select(p, sel))
            return [data], y_hat
        y_hat[0][sel] = run.coded(family.decode, sections[0], _select(p, sel))
        return y_hat


@dataclasses.dataclass(frozen=True)
class Checkerboard(ContextSchedule):
    """He et al. 2021's two passes: anchors from the hyperprior, then non-anchors given them."""

    mask_type: ClassVar[str] = "checkerboard"
    num_sections: ClassVar[int] = 2

    @staticmethod
    def passes(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions [h, w] (bool) of pass 0 (anchors) and pass 1 (non-anchors)."""
        anchors = np.asarray(anchor_mask(h, w, bool))[0, :, :, 0]
        return anchors, ~anchors

    def pass_params(self, net, k: int, hyper, y_hat=None):
        """Entropy parameters of pass `k` (at every position; pass `k` uses its own positions).

        Args:
          net: the bound `Compressor`.
          k: 0 (anchors: zero context) or 1 (non-anchors: context of the anchors).
          hyper: hyper features.
          y_hat: for pass 1, the decoded anchors, zero at the non-anchors (ignored by pass 0).
        """
        if k == 0:
            return net.entropy_params(hyper, jnp.zeros_like(hyper))
        amask = anchor_mask(hyper.shape[1], hyper.shape[2], hyper.dtype)
        # The context of an anchor is zeroed so anchors keep their pass-0 parameters.
        return net.entropy_params(hyper, net.context(y_hat) * (1 - amask))

    def _anchor_pass(self, net, hyper, y, anchor_values):
        """Pass 0 then pass 1; `anchor_values(p0)` gives the anchors' values at every position."""
        amask = anchor_mask(y.shape[1], y.shape[2], y.dtype)
        y_anchor = anchor_values(self.pass_params(net, 0, hyper)) * amask
        return y_anchor, self.pass_params(net, 1, hyper, y_anchor)

    def train(self, net, family, hyper, y, y_noisy, mixed):
        if mixed:
            _, p = self._anchor_pass(net, hyper, y, lambda p0: family.quantize(y, p0, "ste"))
            return p, family.quantize(y, p, "ste")
        _, p = self._anchor_pass(net, hyper, y, lambda p0: y_noisy)
        return p, y_noisy

    def evaluate(self, net, family, hyper, y, rounding):
        y_anchor, p = self._anchor_pass(net, hyper, y, lambda p0: family.quantize(y, p0, rounding))
        y_hat = family.quantize(y, p, rounding)
        y_hat = jnp.where(anchor_mask(y.shape[1], y.shape[2], bool), y_anchor, y_hat)
        return p, y_hat, y_hat

    def param_functions(self, family):
        return tuple(
            (lambda net, hyper, y_hat, k=k: family.coding_params(self.pass_params(net, k, hyper, y_hat)))
            for k in range(2)
        )

    def _code(self, run, family, hyper, y_shape, *, y=None, sections=None):
        out = []
        y_hat = np.zeros(y_shape, np.float32)  # decoded so far; zero where not decoded yet
        for k, sel in enumerate(self.passes(*y_shape[1:3])):
            p = _select(run.params(k, hyper, y_hat), sel)
            if y is not None:
                data, values = run.coded(family.encode, y[0][sel], p)
                out.append(data)
            else:
                values = run.coded(family.decode, sections[k], p)
            y_hat[0][sel] = values
        return (out, y_hat) if y is not None else y_hat


@dataclasses.dataclass(frozen=True)
class Serial(ContextSchedule):
    """Minnen et al. 2018's raster-order schedule with a 5x5 causal ("type A") context."""

    mask_type: ClassVar[str] = "serial"

    def step_params(self, net, patch, hyper_px):
        """Entropy parameters of one position from its causal patch of decoded latents.

        Args:
          net: the bound `Compressor`.
          patch: [B, k, k, M] neighbourhood of y_hat centred on the position.
          hyper_px: [B, 1, 1, 2M] hyper features at the position.

        Returns:
          dict of [B, 1, 1, M] parameters.
        """
        ctx = net.context_at_patch(patch)
        return net.entropy_params(hyper_px, ctx[:, None, None, :])

    def _parallel(self, net, hyper, y_ctx):
        return net.entropy_params(hyper, net.context(y_ctx))

    def train(self, net, family, hyper, y, y_noisy, mixed):
        y_ctx = rounder("ste")(y) if mixed else y_noisy
        return self._parallel(net, hyper, y_ctx), y_ctx

    def evaluate(self, net, family, hyper, y, rounding):
        y_hat = rounder(rounding)(y)
        p = self._parallel(net, hyper, y_hat)
        # Rate of the symbols the serial coder sends (CompressAI's definition).
        return p, y_hat, family.quantize(y, p, rounding)

    def param_functions(self, family):
        return (lambda net, patch, hyper_px: family.coding_params(self.step_params(net, patch, hyper_px)),)

    def _code(self, run, family, hyper, y_shape, *, y=None, sections=None):
        if not family.stepwise:
            raise ModelError(f"serial context coding does not support {type(family).__name__}")
        _, h, w, m = y_shape
        k = self.kernel_size
        r = k // 2
        y_pad = np.zeros((h + 2 * r, w + 2 * r, m), np.float32)
        stream = rangecoder.StreamEncoder() if y is not None else rangecoder.StreamDecoder(sections[0])
        for i in range(h):
            for j in range(w):
                p = run.params(0, y_pad[None, i : i + k, j : j + k], hyper[:, i : i + 1, j : j + 1])
                if y is not None:
                    values = run.coded(family.encode_step, stream, y[0, i, j], p)
                else:
                    values = run.coded(family.decode_step, stream, p)
                y_pad[i + r, j + r] = values
        y_hat = y_pad[None, r : h + r, r : w + r]
        if y is not None:
            return [stream.to_bytes()], y_hat
        return y_hat
