"""The jaxlic model family: transforms + hyperprior + one latent codec, as one Flax module.

Covers Ballé et al. 2018 ("Variational image compression with a scale hyperprior"), Minnen et al.
2018 (mean-scale hyperprior, serial context), Cheng et al. 2020 ("Learned Image Compression with
Discretized Gaussian Mixture Likelihoods and Attention Modules") and the checkerboard family of He
et al. 2021 ("Checkerboard Context Model for Efficient Learned Image Compression") with our FDRAM
attention, Gaussian-mixture entropy parameters and decoder-side post-processing.

Variants are composed from the builders the component registry names (`jaxlic.models.components`:
the transforms, the hyperprior and the attention blocks, defined here), and the latent codec
(entropy family x context schedule, `jaxlic.latent.registry`), which owns everything about coding
y: parameter split, quantisation, likelihood, the training and evaluation passes, and host-side
coding.

Submodule names mirror CompressAI's (`g_a_<i>` is `g_a.<i>`, `h_s_<i>`, `entropy_bottleneck`,
`context_prediction`, `entropy_parameters_<i>`), so its state dicts map onto our params by name.
The latent codec is a plain object, not a submodule, so it adds no level to the parameter tree.

The contract (CompressAI's): `apply(v, x, method="forward_train", rngs={"noise": k})` and
`method="forward_eval"` return `{"x_hat", "likelihoods": {"y", "z"}}`; `method="aux_loss"` gives
the factorized prior's quantile loss. The pieces that the host-side codec jits (`analysis`,
`hyper_synthesis`, `entropy_params`, `synthesis`, and the latent codec's parameter functions) are
public methods too, so the encoder, the decoder and `forward_eval` run the same computations.

Quantisation of y is the entropy family's (`jaxlic.latent.families`), identical in `forward_eval`
and in the codec: scale-only: round(y); mean-scale: round(y - mu) + mu; mixture: round(y).
Serial context models follow CompressAI: `forward_eval` uses round(y) as context (parallel), while
real serial decoding uses round(y - mu) + mu, position by position.

Variable-rate models (`cfg.num_rates > 0`) follow Cui et al. 2021 ("Asymmetric Gained Deep Image
Compression With Continuous Rate Adaptation"): a gain unit scales y = g_a(x) per channel at the
rate parameter `rate` (before the hyper analysis sees it), and a separate inverse gain unit
rescales y_hat before g_s. The latent codec and the entropy-parameter path never see the gains,
so the decoder's integers depend only on the stream, never on the rate. Such a model needs
`rate` (a scalar or one per example, `[B]`) in `analysis`, `synthesis`, `forward_train`,
`forward_eval` and `eval_latents`; fixed-rate models ignore it and keep their parameter trees.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.entropy import EntropyBottleneck
from jaxlic.entropy.quantize import quantize
from jaxlic.latent.registry import build_latent_codec
from jaxlic.layers.gdn import GDN
from jaxlic.layers.residual import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, leaky_relu
from jaxlic.layers.subpixel import SubpelConv, conv
from jaxlic.models import components
from jaxlic.models.config import ModelConfig


def _deconv(features: int):
    from jaxlic.layers.deconv import SubpixelDeconv

    return SubpixelDeconv(features, kernel_size=5, stride=2)


# ------------------------------------------------- builders named by the component registry
def no_attention(n: int):
    """No attention blocks."""
    return []


def cheng_attention(n: int):
    """Cheng et al. 2020's attention block."""
    from jaxlic.layers.attention import AttentionBlock

    return [AttentionBlock(n)]


def fdram_attention(n: int):
    """Our FDRAM block."""
    from jaxlic.layers.attention import FDRAM

    return [FDRAM(n)]


def balle_transforms(c: ModelConfig):
    """GDN convolutions of Ballé et al. 2018 / Minnen et al. 2018 (no attention)."""
    N, M = c.N, c.M
    g_a = [conv(N, 5, 2), GDN(), conv(N, 5, 2), GDN(), conv(N, 5, 2), GDN(), conv(M, 5, 2)]
    g_s = [_deconv(N), GDN(inverse=True), _deconv(N), GDN(inverse=True), _deconv(N), GDN(inverse=True)]
    return g_a, g_s + [_deconv(3)]


def cheng_transforms(c: ModelConfig):
    """Residual blocks of Cheng et al. 2020, with attention blocks at 1/4 and 1/16 resolution."""
    N, M = c.N, c.M
    att = components.ATTENTIONS[c.attention].load()
    g_a = [ResidualBlockWithStride(N), ResidualBlock(N), ResidualBlockWithStride(N)]
    g_a += att(N)
    g_a += [ResidualBlock(N), ResidualBlockWithStride(N), ResidualBlock(N), conv(M, 3, 2)]
    g_a += att(M)
    g_s = att(M)
    g_s += [ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), ResidualBlockUpsample(N)]
    g_s += att(N)
    g_s += [ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), SubpelConv(3, 2)]
    return g_a, g_s


def balle_scale_hyperprior(N: int, M: int, out: int):
    """Ballé et al. 2018: h_a of |y|; h_s ends in a ReLU (it predicts the M scales)."""
    relu = jax.nn.relu
    h_a = [conv(N, 3, 1), relu, conv(N, 5, 2), relu, conv(N, 5, 2)]
    return h_a, [_deconv(N), relu, _deconv(N), relu, conv(M, 3, 1), relu], True


def balle_mean_hyperprior(N: int, M: int, out: int):
    """Minnen et al. 2018's mean-scale hyperprior."""
    h_a = [conv(N, 3, 1), leaky_relu, conv(N, 5, 2), leaky_relu, conv(N, 5, 2)]
    return h_a, [_deconv(M), leaky_relu, _deconv(M * 3 // 2), leaky_relu, conv(out, 3, 1)], False


def cheng_hyperprior(N: int, M: int, out: int):
    """Cheng et al. 2020's hyperprior (3x3 convs, sub-pixel up-sampling)."""
    lr = leaky_relu
    h_a = [conv(N, 3), lr, conv(N, 3), lr, conv(N, 3, 2), lr, conv(N, 3), lr, conv(N, 3, 2)]
    h_s = [conv(N, 3), lr, SubpelConv(N, 2), lr, conv(N * 3 // 2, 3), lr, SubpelConv(N * 3 // 2, 2), lr]
    return h_a, h_s + [conv(out, 3)], False


class Compressor(nn.Module):
    """Analysis/synthesis transforms + hyperprior + one latent codec (`self.latent`)."""

    cfg: ModelConfig

    @property
    def latent(self):
        """The `jaxlic.latent.LatentCodec` of this configuration (entropy family x schedule)."""
        c = self.cfg
        return build_latent_codec(c.context, c.entropy, c.K)

    def setup(self):
        c = self.cfg
        N, M = c.N, c.M
        latent = self.latent
        self.g_a, self.g_s = components.TRANSFORMS[c.transform].load()(c)
        hyperprior = components.HYPERPRIORS[c.hyper].load()
        self.h_a, self.h_s, self._abs_hyper_input = hyperprior(N, M, latent.hyper_channels(M))
        self.entropy_bottleneck = EntropyBottleneck(N)
        # The latent codec's own networks (context, entropy parameters), under CompressAI's names.
        for name, module in latent.networks(M).items():
            setattr(self, name, module)
        if c.postprocess:
            from jaxlic.layers.postprocess import PostProcess

            self.post = PostProcess(features=c.pp_features)
        if c.num_rates > 0:
            from jaxlic.layers.gain import GainUnit

            self.gain = GainUnit(c.num_rates, M)
            self.inv_gain = GainUnit(c.num_rates, M)
            if c.z_gains:
                self.z_gain = GainUnit(c.num_rates, N)
                self.inv_z_gain = GainUnit(c.num_rates, N)

    def _check_rate(self, rate):
        if self.cfg.num_rates > 0 and rate is None:
            raise ValueError(
                f"{self.cfg.name} is a variable-rate model: pass rate in [0, {self.cfg.num_rates - 1}]"
            )

    # ----------------------------------------------------------------- pieces (jitted by the codec)
    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    def analysis(self, x, rate=None):
        """x [B,H,W,3] in [0,1] -> (y [B,H/16,W/16,M], z [B,H/64,W/64,N]).

        A variable-rate model scales y by its gains at `rate` (scalar or [B]) before z, and z by
        its own gains when it has them (`cfg.z_gains`).
        """
        y = self._run(self.g_a, x)
        if self.cfg.num_rates > 0:
            self._check_rate(rate)
            y = self.gain(y, rate)
        z = self._run(self.h_a, jnp.abs(y) if self._abs_hyper_input else y)
        if self.cfg.z_gains:
            z = self.z_gain(z, rate)
        return y, z

    def hyper_synthesis(self, z_hat, rate=None):
        """z_hat -> hyper features: entropy params (no context) or the hyper half of their input.

        With z gains (`cfg.z_gains`) z_hat is first rescaled by their inverse at `rate`.
        """
        if self.cfg.z_gains:
            self._check_rate(rate)
            z_hat = self.inv_z_gain(z_hat, rate)
        if self.cfg.is_exact:  # quantisation-aware float twin of the integer h_s
            return self._fake("h_s", z_hat, self.exact_spec().f_z, self.exact_spec().hyper)
        return self._run(self.h_s, z_hat)

    def hyper_synthesis_exact(self, z_sym, rate=None):
        """The exact path's h_s: z's integer symbols ``round(z - medians)`` -> integer hyper
        features (int32; without a context network, `(accumulator, bits)` of the entropy
        parameters)."""
        from jaxlic.latent.exact import IntegerView

        return IntegerView(self).hyper(z_sym)

    # ----------------------------------------------------------------- the exact path's networks
    def exact_programs(self) -> dict:
        """The exact path's networks as `jaxlic.latent.exact.Program`s: "h_s", and with a
        context network "context_prediction" and "entropy_parameters"."""
        from jaxlic.latent import exact

        uses_context = self.latent.uses_context
        progs = {"h_s": exact.program(self.h_s, "h_s", output=uses_context)}
        if uses_context:
            progs["context_prediction"] = exact.program(
                self.context_prediction, "context_prediction", output=True
            )
            progs["entropy_parameters"] = exact.program(
                self.entropy_parameters, "entropy_parameters", output=False
            )
        return progs

    def exact_spec(self):
        """`jaxlic.latent.exact.Spec` of `cfg.exact` (checked against the networks)."""
        from jaxlic.latent.exact import Spec

        progs = self.exact_programs()
        n_hyper = progs["h_s"].num_points
        n = 1 + n_hyper + (progs["entropy_parameters"].num_points if "context_prediction" in progs else 0)
        if len(self.cfg.exact) != n:
            raise ValueError(f"exact={self.cfg.exact!r}: this model has {n} activation points")
        return Spec(tuple(self.cfg.exact), n_hyper)

    def exact_input_bits(self) -> dict:
        """Fractional bits of each exact network's input, by `exact_programs` name."""
        spec = self.exact_spec()
        from jaxlic.latent.exact import CONTEXT_INPUT_BITS

        return {"h_s": spec.f_z, "context_prediction": CONTEXT_INPUT_BITS, "entropy_parameters": spec.f_cat}

    def exact_export(self):
        """(snapped params, worst-case accumulators per network) of this exact model, for
        export: see `jaxlic.latent.exact.snap_params` and `overflow_bounds`. Call through
        `model.apply(variables, method=...)`."""
        from jaxlic.latent import exact

        spec, progs, f_in = self.exact_spec(), self.exact_programs(), self.exact_input_bits()
        params = jax.tree_util.tree_map(np.asarray, self.variables["params"])
        points = {"h_s": spec.hyper, "context_prediction": (spec.f_cat,), "entropy_parameters": spec.params}
        bounds = {  # every network's input is clipped to the 14-bit activations
            name: exact.overflow_bounds(prog, params, points[name], f_in[name], 2**13)
            for name, prog in progs.items()
        }
        return exact.snap_params(progs, params, spec, f_in), bounds

    def _fake(self, name: str, x, f_in: int, fracs):
        """Runs network `name` of `exact_programs` in quantisation-aware float (training)."""
        from jaxlic.latent import exact

        if self.is_initializing():  # create its parameters
            layers = getattr(self, name)
            self._run(layers if isinstance(layers, list | tuple) else [layers], x)
        scale = np.float32(2.0**f_in)
        grid = jnp.clip(jnp.round(x * scale), exact.ACT_MIN, exact.ACT_MAX) / scale
        x = x + jax.lax.stop_gradient(grid - x)  # the input on its grid, clipped like the integers
        return exact.run_fake(self.exact_programs()[name], self.variables["params"], x, fracs, f_in)

    def entropy_params(self, hyper, ctx=None):
        """Entropy parameters as a dict of [B,h,w,M] (or [B,h,w,M,K] for the mixture) arrays.

        Without `ctx` the hyper features are the raw parameters (models without context); with
        `ctx` [B,h,w,2M] (context features, zeros for checkerboard anchors) they go through the
        entropy-parameter network. Mixture parameters are snapped onto the coder's grids only
        by the family's `coding_params`.
        """
        if ctx is None:
            raw = hyper
        elif self.cfg.is_exact:
            spec = self.exact_spec()
            raw = self._fake(
                "entropy_parameters", jnp.concatenate([hyper, ctx], axis=-1), spec.f_cat, spec.params
            )
        else:
            raw = self._run(self.entropy_parameters, jnp.concatenate([hyper, ctx], axis=-1))
        return self.latent.family.split(raw)

    def context(self, y_hat):
        """Context features of decoded latents (the masked convolution)."""
        if self.cfg.is_exact:
            from jaxlic.latent.exact import CONTEXT_INPUT_BITS

            return self._fake("context_prediction", y_hat, CONTEXT_INPUT_BITS, (self.exact_spec().f_cat,))
        return self.context_prediction(y_hat)

    def context_at_patch(self, patch):
        """The context network's output at the centre of `patch` [B, k, k, M] -> [B, 2M]."""
        return self.context_prediction.at_patch(patch)

    def synthesis(self, y_hat, rate=None):
        """y_hat -> x_hat [B,16h,16w,3] (post-processed when configured); not clipped.

        A variable-rate model first rescales y_hat by its inverse gains at `rate`.
        """
        if self.cfg.num_rates > 0:
            self._check_rate(rate)
            y_hat = self.inv_gain(y_hat, rate)
        x = self._run(self.g_s, y_hat)
        if self.cfg.postprocess:
            x = self.post(x)
        return x

    # ----------------------------------------------------------------- training / evaluation
    def forward_train(self, x, rate=None):
        """Training pass with additive uniform noise; needs rngs={"noise": key}.

        `rate`: the rate parameter of a variable-rate model (scalar or one per example).
        """
        y, z = self.analysis(x, rate)
        z_hat, z_lik = self.entropy_bottleneck(z, training=True)
        mixed = components.TRAIN_QUANT[self.cfg.train_quant].straight_through
        if mixed:  # the hyper-synthesis sees z rounded as the coder rounds it (straight-through)
            z_hat = quantize(z, "ste", offset=jax.lax.stop_gradient(self.entropy_bottleneck.medians()))
        hyper = self.hyper_synthesis(z_hat, rate)
        y_dec, y_lik = self.latent.train(self, hyper, y, self.make_rng("noise"), mixed=mixed)
        return {"x_hat": self.synthesis(y_dec, rate), "likelihoods": {"y": y_lik, "z": z_lik}, "y": y, "z": z}

    def forward_eval(self, x, rate=None):
        """Deterministic pass with rounding, as the range coder quantises (see module doc)."""
        y, z = self.analysis(x, rate)
        return self.eval_latents(y, z, rate=rate)

    def eval_latents(self, y, z, rounding="round", rate=None):
        """The rounding pass of `forward_eval` from given latents (y, z) instead of an image.

        `rounding` is how each latent is rounded, at the same places as the coder rounds:
        "round" (the coder's values), "ste" (the same values with the identity's gradient: the
        coder's own loss, differentiable in (y, z)) or a function `r(v)` of the offset-free
        values (e.g. the soft rounding of `jaxlic.models.refine`). Encoder-side latent refinement
        descends the last two. `rate` is a variable-rate model's rate parameter (for the inverse
        gains before h_s and g_s: y and z are already gained).
        """
        med = jax.lax.stop_gradient(self.entropy_bottleneck.medians())
        z_hat = quantize(z, rounding, offset=med)
        z_lik = self.entropy_bottleneck.likelihood(z_hat)
        if self.cfg.is_exact and isinstance(rounding, str) and rounding == "round":
            # the coder's own integer path (no gradient); "ste" and soft rounding use its float twin
            from jaxlic.latent.exact import IntegerView

            view = IntegerView(self)
            z_sym = jnp.round(z - med).astype(jnp.int32)
            y_hat, y_lik = self.latent.evaluate(view, view.hyper(z_sym), y, rounding)
        else:
            hyper = self.hyper_synthesis(z_hat, rate)
            y_hat, y_lik = self.latent.evaluate(self, hyper, y, rounding)
        return {
            "x_hat": self.synthesis(y_hat, rate),
            "likelihoods": {"y": y_lik, "z": z_lik},
            "y": y,
            "z": z,
            "y_hat": y_hat,
            "z_hat": z_hat,
        }

    def aux_loss(self):
        return self.entropy_bottleneck.loss()

    def __call__(self, x, training: bool = False, rate=None):
        return self.forward_train(x, rate) if training else self.forward_eval(x, rate)
