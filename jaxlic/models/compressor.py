"""The jaxlic model family: one configurable Flax module for every architecture.

Covers Ballé et al. 2018 ("Variational image compression with a scale hyperprior"), Minnen et al.
2018 (mean-scale hyperprior, serial context), Cheng et al. 2020 ("Learned Image Compression with
Discretized Gaussian Mixture Likelihoods and Attention Modules") and the checkerboard family of He
et al. 2021 ("Checkerboard Context Model for Efficient Learned Image Compression") with our FDRAM
attention, Gaussian-mixture entropy parameters and decoder-side post-processing.

Submodule names mirror CompressAI's (`g_a_<i>` is `g_a.<i>`, `h_s_<i>`, `entropy_bottleneck`,
`context_prediction`, `entropy_parameters_<i>`), so its state dicts map onto our params by name.

The contract (CompressAI's): `apply(v, x, method="forward_train", rngs={"noise": k})` and
`method="forward_eval"` return `{"x_hat", "likelihoods": {"y", "z"}}`; `method="aux_loss"` gives
the factorized prior's quantile loss. The pieces that the host-side codec jits (`analysis`,
`hyper_synthesis`, `entropy_params`, `synthesis`) are public methods too, so the encoder, the
decoder and `forward_eval` run the same computations.

Quantisation of y, by entropy model (identical in `forward_eval` and in the codec):
  * "scale": y_hat = round(y); "gaussian": y_hat = round(y - mu) + mu; "gmm": y_hat = round(y).
  * Serial context models follow CompressAI: `forward_eval` uses round(y) as context (parallel),
    while real serial decoding uses round(y - mu) + mu, position by position.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic.entropy import EntropyBottleneck, gaussian_likelihood, mixture_likelihood, quantize_params
from jaxlic.entropy.quantize import quantize
from jaxlic.layers.context import MaskedConv, anchor_mask
from jaxlic.layers.gdn import GDN
from jaxlic.layers.residual import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride
from jaxlic.layers.subpixel import SubpelConv, conv
from jaxlic.models.config import ModelConfig

leaky_relu = functools.partial(nn.leaky_relu, negative_slope=0.01)


def _attention(kind: str, n: int):
    from jaxlic.layers import attention

    return attention.AttentionBlock(n) if kind == "cheng" else attention.FDRAM(n)


def _deconv(features: int):
    from jaxlic.layers.deconv import SubpixelDeconv

    return SubpixelDeconv(features, kernel_size=5, stride=2)


def _round_ste(x):
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def _rounder(rounding):
    """The function of a rounding mode: "round", "ste", or a rounding function (itself)."""
    if callable(rounding):
        return rounding
    return jnp.round if rounding == "round" else _round_ste


class Compressor(nn.Module):
    """Analysis/synthesis transforms + hyperprior + (optional) context + entropy parameters."""

    cfg: ModelConfig

    def setup(self):
        c = self.cfg
        N, M = c.N, c.M
        if c.transform == "balle":
            self.g_a = [conv(N, 5, 2), GDN(), conv(N, 5, 2), GDN(), conv(N, 5, 2), GDN(), conv(M, 5, 2)]
            self.g_s = [
                _deconv(N),
                GDN(inverse=True),
                _deconv(N),
                GDN(inverse=True),
                _deconv(N),
                GDN(inverse=True),
                _deconv(3),
            ]
        else:
            att = (lambda ch: [_attention(c.attention, ch)]) if c.attention != "none" else (lambda ch: [])
            g_a = [ResidualBlockWithStride(N), ResidualBlock(N), ResidualBlockWithStride(N)]
            g_a += att(N)
            g_a += [ResidualBlock(N), ResidualBlockWithStride(N), ResidualBlock(N), conv(M, 3, 2)]
            g_a += att(M)
            g_s = att(M)
            g_s += [ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), ResidualBlockUpsample(N)]
            g_s += att(N)
            g_s += [ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), SubpelConv(3, 2)]
            self.g_a, self.g_s = g_a, g_s

        relu = jax.nn.relu
        if c.hyper == "balle-scale":
            self.h_a = [conv(N, 3, 1), relu, conv(N, 5, 2), relu, conv(N, 5, 2)]
            self.h_s = [_deconv(N), relu, _deconv(N), relu, conv(M, 3, 1), relu]
        elif c.hyper == "balle-mean":
            out = M * c.params_per_channel if c.context == "none" else 2 * M
            self.h_a = [conv(N, 3, 1), leaky_relu, conv(N, 5, 2), leaky_relu, conv(N, 5, 2)]
            self.h_s = [_deconv(M), leaky_relu, _deconv(M * 3 // 2), leaky_relu, conv(out, 3, 1)]
        else:
            out = M * c.params_per_channel if c.context == "none" else 2 * M
            self.h_a = [
                conv(N, 3),
                leaky_relu,
                conv(N, 3),
                leaky_relu,
                conv(N, 3, 2),
                leaky_relu,
                conv(N, 3),
                leaky_relu,
                conv(N, 3, 2),
            ]
            self.h_s = [
                conv(N, 3),
                leaky_relu,
                SubpelConv(N, 2),
                leaky_relu,
                conv(N * 3 // 2, 3),
                leaky_relu,
                SubpelConv(N * 3 // 2, 2),
                leaky_relu,
                conv(out, 3),
            ]

        self.entropy_bottleneck = EntropyBottleneck(N)
        if c.context != "none":
            self.context_prediction = MaskedConv(2 * M, 5, c.context)
            self.entropy_parameters = [
                conv(M * 10 // 3, 1),
                leaky_relu,
                conv(M * 8 // 3, 1),
                leaky_relu,
                conv(M * c.params_per_channel, 1),
            ]
        if c.postprocess:
            from jaxlic.layers.postprocess import PostProcess

            self.post = PostProcess(features=c.pp_features)

    # ----------------------------------------------------------------- pieces (jitted by the codec)
    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    def analysis(self, x):
        """x [B,H,W,3] in [0,1] -> (y [B,H/16,W/16,M], z [B,H/64,W/64,N])."""
        y = self._run(self.g_a, x)
        z = self._run(self.h_a, jnp.abs(y) if self.cfg.hyper == "balle-scale" else y)
        return y, z

    def hyper_synthesis(self, z_hat):
        """z_hat -> hyper features: entropy params (no context) or the hyper half of their input."""
        return self._run(self.h_s, z_hat)

    def entropy_params(self, hyper, ctx=None):
        """Entropy parameters as a dict of [B,h,w,M] (or [B,h,w,M,K] for the mixture) arrays.

        Context models take `ctx` [B,h,w,2M] (zeros for anchors); others use `hyper` directly.
        Mixture parameters are snapped onto the coder's grids by `quantize_params` only in
        `split_params(..., for_coding=True)`.
        """
        if self.cfg.context == "none":
            raw = hyper
        else:
            raw = self._run(self.entropy_parameters, jnp.concatenate([hyper, ctx], axis=-1))
        return self.split_params(raw)

    def split_params(self, raw):
        c = self.cfg
        if c.entropy == "scale":
            return {"scales": raw}
        if c.entropy == "gaussian":
            scales, means = jnp.split(raw, 2, axis=-1)  # CompressAI's order: scales, then means
            return {"scales": scales, "means": means}
        logits, means, scales = jnp.split(raw, 3, axis=-1)
        shape = raw.shape[:-1] + (c.M, c.K)
        return {
            "logits": logits.reshape(shape),
            "means": means.reshape(shape),
            "scales": scales.reshape(shape),
        }

    def coding_params(self, p):
        """Parameters exactly as the range coder sees them (mixture snapped onto its grids)."""
        if self.cfg.entropy != "gmm":
            return p
        w, m, s = quantize_params(p["logits"], p["means"], p["scales"])
        return {"weights": w, "means": m, "scales": s}

    def context(self, y_hat):
        return self.context_prediction(y_hat)

    def synthesis(self, y_hat):
        """y_hat -> x_hat [B,16h,16w,3] (post-processed when configured); not clipped."""
        x = self._run(self.g_s, y_hat)
        if self.cfg.postprocess:
            x = self.post(x)
        return x

    # ----------------------------------------------------------------- likelihoods
    def y_likelihood(self, y_q, p, *, coded: bool):
        c = self.cfg
        if c.entropy == "scale":
            return gaussian_likelihood(y_q, jnp.zeros_like(y_q), p["scales"])
        if c.entropy == "gaussian":
            return gaussian_likelihood(y_q, p["means"], p["scales"])
        if coded:
            q = self.coding_params(p)
            return mixture_likelihood(y_q, jnp.log(q["weights"]), q["means"], q["scales"])
        return mixture_likelihood(y_q, p["logits"], p["means"], p["scales"])

    def _quantize_y(self, y, p, mode):
        """Rounds y as the coder does ('round'), straight-through ('ste') or with a given
        rounding function (`eval_latents`)."""
        r = _rounder(mode)
        if self.cfg.entropy == "gaussian":
            return r(y - p["means"]) + p["means"]
        return r(y)

    # ----------------------------------------------------------------- training / evaluation
    def forward_train(self, x):
        """Training pass with additive uniform noise; needs rngs={"noise": key}."""
        c = self.cfg
        y, z = self.analysis(x)
        z_hat, z_lik = self.entropy_bottleneck(z, training=True)
        hyper = self.hyper_synthesis(z_hat)
        y_noisy = y + jax.random.uniform(self.make_rng("noise"), y.shape, y.dtype, -0.5, 0.5)
        mixed = c.train_quant == "mixed"

        if c.context == "none":
            p = self.entropy_params(hyper)
            y_dec = self._quantize_y(y, p, "ste") if mixed else y_noisy
        elif c.context == "serial":
            y_ctx = _round_ste(y) if mixed else y_noisy
            p = self.entropy_params(hyper, self.context(y_ctx))
            y_dec = y_ctx
        else:
            amask = anchor_mask(y.shape[1], y.shape[2], y.dtype)
            if mixed:
                p_anchor = self.entropy_params(hyper, jnp.zeros(hyper.shape[:-1] + (2 * c.M,), y.dtype))
                y_anchor = self._quantize_y(y, p_anchor, "ste") * amask
            else:
                y_anchor = y_noisy * amask
            p = self.entropy_params(hyper, self.context(y_anchor) * (1 - amask))
            y_dec = self._quantize_y(y, p, "ste") if mixed else y_noisy
        y_lik = self.y_likelihood(y_noisy, p, coded=False)
        return {"x_hat": self.synthesis(y_dec), "likelihoods": {"y": y_lik, "z": z_lik}, "y": y, "z": z}

    def forward_eval(self, x):
        """Deterministic pass with rounding, as the range coder quantises (see module doc)."""
        y, z = self.analysis(x)
        return self.eval_latents(y, z)

    def eval_latents(self, y, z, rounding="round"):
        """The rounding pass of `forward_eval` from given latents (y, z) instead of an image.

        `rounding` is how each latent is rounded, at the same places as the coder rounds:
        "round" (the coder's values), "ste" (the same values with the identity's gradient: the
        coder's own loss, differentiable in (y, z)) or a function `r(v)` of the offset-free
        values (e.g. the soft rounding of `jaxlic.models.refine`). Encoder-side latent refinement
        descends the last two.
        """
        c = self.cfg
        med = jax.lax.stop_gradient(self.entropy_bottleneck.medians())
        if callable(rounding):
            z_hat = rounding(z - med) + med
        else:
            z_hat = quantize(z, rounding, offset=med)
        z_lik = self.entropy_bottleneck.likelihood(z_hat)
        hyper = self.hyper_synthesis(z_hat)
        rnd = _rounder(rounding)
        if c.context == "none":
            p = self.entropy_params(hyper)
            y_hat = y_sent = self._quantize_y(y, p, rounding)
        elif c.context == "serial":
            y_hat = rnd(y)
            p = self.entropy_params(hyper, self.context(y_hat))
            # Rate of the symbols the serial coder sends (CompressAI's definition).
            y_sent = self._quantize_y(y, p, rounding)
        else:
            p_anchor = self.anchor_params(hyper)
            y_anchor = self._quantize_y(y, p_anchor, rounding) * anchor_mask(y.shape[1], y.shape[2], y.dtype)
            p = self.nonanchor_params(hyper, y_anchor)
            y_hat = self._quantize_y(y, p, rounding)
            y_hat = y_sent = jnp.where(anchor_mask(y.shape[1], y.shape[2], bool), y_anchor, y_hat)
        y_lik = self.y_likelihood(y_sent, p, coded=True)
        return {
            "x_hat": self.synthesis(y_hat),
            "likelihoods": {"y": y_lik, "z": z_lik},
            "y": y,
            "z": z,
            "y_hat": y_hat,
            "z_hat": z_hat,
        }

    # ----------------------------------------------------------------- checkerboard passes
    def anchor_params(self, hyper):
        """Entropy parameters of the anchors: hyperprior only (context input is zero)."""
        zeros = jnp.zeros(hyper.shape[:-1] + (2 * self.cfg.M,), hyper.dtype)
        return self.entropy_params(hyper, zeros)

    def nonanchor_params(self, hyper, y_hat_anchor):
        """Entropy parameters given the decoded anchors (`y_hat_anchor` is zero at non-anchors)."""
        amask = anchor_mask(hyper.shape[1], hyper.shape[2], hyper.dtype)
        return self.entropy_params(hyper, self.context(y_hat_anchor) * (1 - amask))

    # ----------------------------------------------------------------- serial step
    def serial_step_params(self, patch, hyper_px):
        """Entropy params of one position from its causal 5x5 patch of y_hat.

        Args:
          patch: [B, 5, 5, M] neighbourhood of decoded y_hat centred on the position.
          hyper_px: [B, 1, 1, 2M] hyper features at the position.
        Returns:
          dict of [B, 1, 1, M] parameters.
        """
        ctx = self.context_prediction.at_patch(patch)
        return self.entropy_params(hyper_px, ctx[:, None, None, :])

    def aux_loss(self):
        return self.entropy_bottleneck.loss()

    def __call__(self, x, training: bool = False):
        return self.forward_train(x) if training else self.forward_eval(x)
