"""`LatentCodec`: one entropy family under one context schedule — everything about coding y.

The `Compressor` (transforms + hyperprior) holds one `LatentCodec` and delegates to it the
training pass, the exact evaluation pass and, through `jaxlic.latent.host.HostCoder`, the range
coding of y. Build one with `jaxlic.latent.registry.build_latent_codec(context, entropy, K)`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlic.latent.families import EntropyFamily
from jaxlic.latent.schedules import ContextSchedule

__all__ = ["LatentCodec"]


@dataclasses.dataclass(frozen=True)
class LatentCodec:
    """An entropy family coded in a context schedule's order.

    Attributes:
      family: how y's distribution is parameterised, quantised and coded.
      schedule: the order y is decoded in (and so what its context can see).
    """

    family: EntropyFamily
    schedule: ContextSchedule

    @property
    def num_sections(self) -> int:
        """Stream sections that carry y."""
        return self.schedule.num_sections

    @property
    def uses_context(self) -> bool:
        """Whether the model has a context network and an entropy-parameter network."""
        return self.schedule.mask_type is not None

    def networks(self, M: int) -> dict:
        """This codec's own networks for y of M channels, by the names the model gives them:
        with a context schedule, its context network ("context_prediction") and the
        entropy-parameter network ("entropy_parameters", Minnen et al. 2018's three 1x1 convs);
        CompressAI's names, so its weights import as they are."""
        if not self.uses_context:
            return {}
        from jaxlic.layers.context import MaskedConv
        from jaxlic.layers.residual import leaky_relu
        from jaxlic.layers.subpixel import conv

        sched = self.schedule
        return {
            "context_prediction": MaskedConv(2 * M, sched.kernel_size, sched.mask_type),
            "entropy_parameters": [
                conv(M * 10 // 3, 1),
                leaky_relu,
                conv(M * 8 // 3, 1),
                leaky_relu,
                conv(M * self.family.params_per_channel, 1),
            ],
        }

    def hyper_channels(self, M: int) -> int:
        """Output channels of the hyper-synthesis for y of M channels."""
        return self.schedule.hyper_channels(M, self.family)

    # ---------------------------------------------------------------- jax (traced in the model)
    def train(self, net, hyper, y, rng, *, mixed: bool):
        """Training pass: `(y_dec, y_likelihoods)`; the rate is measured on y + uniform noise.

        Args:
          net: the bound `Compressor`.
          hyper: hyper-synthesis output.
          y: latents.
          rng: PRNG key of the noise.
          mixed: straight-through rounding for the decoder and the context inputs (else noise).
        """
        y_noisy = self.family.quantize(y, None, "noise", rng)
        p, y_dec = self.schedule.train(net, self.family, hyper, y, y_noisy, mixed)
        return y_dec, self.family.likelihood(y_noisy, p, coded=False)

    def evaluate(self, net, hyper, y, rounding="round"):
        """Exact pass: `(y_hat, y_likelihoods)` as the coder decodes and pays them."""
        p, y_hat, y_sent = self.schedule.evaluate(net, self.family, hyper, y, rounding)
        return y_hat, self.family.likelihood(y_sent, p, coded=True)

    def param_functions(self) -> tuple:
        """Functions `f(net, *args) -> coding parameters` that the host coder jits."""
        return self.schedule.param_functions(self.family)

    # ---------------------------------------------------------------- host (numpy)
    def encode(self, run, hyper, y: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """y [1, h, w, M] -> (the y sections, y_hat) (see `ContextSchedule.encode`)."""
        return self.schedule.encode(run, self.family, hyper, y)

    def decode(self, run, hyper: np.ndarray, sections, y_shape) -> np.ndarray:
        """The y sections -> y_hat [1, h, w, M] (see `ContextSchedule.decode`)."""
        return self.schedule.decode(run, self.family, hyper, sections, y_shape)
