"""Factorized prior (``EntropyBottleneck``): a per-channel learned density for the hyper-latent.

Implements the non-parametric "deep factorized" density of Ballé et al. 2018, "Variational image
compression with a scale hyperprior" (appendix 6.1): per channel, a small monotone network maps
``x`` to the logit of the cumulative ``c(x)``; the likelihood of the unit bin around ``x`` is
``sigmoid(logit c(x + 1/2)) - sigmoid(logit c(x - 1/2))``. Parameter names and shapes follow
CompressAI's ``EntropyBottleneck`` so trained weights import 1:1.

The tail quantiles (``quantiles [C, 1, 3]``: lower tail, median, upper tail) are trained by the
auxiliary :meth:`EntropyBottleneck.loss` only; the coder uses them to bound the tables' support.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding import rangecoder
from jaxlic.coding.tables import IndexedTables, cumulative_to_quantized_cdf
from jaxlic.entropy.quantize import lower_bound, quantize

__all__ = ["EntropyBottleneck", "build_tables", "medians", "symbols", "encode_symbols", "decode_symbols"]


def _softplus_np(x):
    return np.logaddexp(0.0, x)


def _logits_cumulative(params: Mapping, x, num_layers: int, xp, stop_gradient: bool = False):
    """Logit of the cumulative density, ``x: [C, 1, N] -> [C, 1, N]`` (numpy or jax via ``xp``)."""
    if xp is np:
        softplus, tanh, sg = _softplus_np, np.tanh, (lambda a: a)
    else:
        softplus, tanh = jax.nn.softplus, jnp.tanh
        sg = jax.lax.stop_gradient if stop_gradient else (lambda a: a)
    logits = x
    for i in range(num_layers):
        logits = xp.matmul(softplus(sg(params[f"matrix{i}"])), logits) + sg(params[f"bias{i}"])
        if i < num_layers - 1:
            logits = logits + tanh(sg(params[f"factor{i}"])) * tanh(logits)
    return logits


def _num_layers(params: Mapping) -> int:
    n = 0
    while f"matrix{n}" in params:
        n += 1
    return n


class EntropyBottleneck(nn.Module):
    """Deep factorized density per channel (Ballé 2018), CompressAI-compatible parameters.

    Parameters (``f = (1,) + filters + (1,)``, ``i = 0..len(filters)``): ``matrix{i}``
    ``[C, f[i+1], f[i]]`` (through softplus, so the density network is monotone), ``bias{i}``
    ``[C, f[i+1], 1]``, ``factor{i}`` ``[C, f[i+1], 1]`` (through tanh; not on the last layer) and
    ``quantiles [C, 1, 3]``.

    Attributes:
      channels: number of channels ``C`` of ``z``.
      filters: hidden widths of the density network.
      init_scale: initial spread of the density (and initial quantiles ``±init_scale``).
      tail_mass: probability left outside the quantiles (targets of :meth:`loss`).
    """

    channels: int
    filters: Sequence[int] = (3, 3, 3, 3)
    init_scale: float = 10.0
    tail_mass: float = 1e-9
    likelihood_bound: float = 1e-9

    def setup(self):
        f = (1,) + tuple(self.filters) + (1,)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        c = self.channels
        self.matrices = [
            self.param(
                f"matrix{i}",
                nn.initializers.constant(np.log(np.expm1(1.0 / scale / f[i + 1]))),
                (c, f[i + 1], f[i]),
            )
            for i in range(len(f) - 1)
        ]
        self.biases = [
            self.param(f"bias{i}", _uniform_init(-0.5, 0.5), (c, f[i + 1], 1)) for i in range(len(f) - 1)
        ]
        self.factors = [
            self.param(f"factor{i}", nn.initializers.zeros, (c, f[i + 1], 1)) for i in range(len(f) - 2)
        ]
        init_q = np.tile(np.array([-self.init_scale, 0.0, self.init_scale], np.float32), (c, 1, 1))
        self.quantiles = self.param(
            "quantiles", lambda _k, shape: jnp.asarray(init_q).reshape(shape), (c, 1, 3)
        )

    def _params(self) -> dict:
        p = {f"matrix{i}": m for i, m in enumerate(self.matrices)}
        p.update({f"bias{i}": b for i, b in enumerate(self.biases)})
        p.update({f"factor{i}": g for i, g in enumerate(self.factors)})
        return p

    def logits_cumulative(self, x: jax.Array, stop_gradient: bool = False) -> jax.Array:
        """``[C, 1, N] -> [C, 1, N]`` logit of the cumulative density."""
        return _logits_cumulative(self._params(), x, len(self.matrices), jnp, stop_gradient)

    def medians(self) -> jax.Array:
        """``[C]`` medians (``quantiles[:, 0, 1]``)."""
        return self.quantiles[:, 0, 1]

    def likelihood(self, z_hat: jax.Array) -> jax.Array:
        """Likelihood of the unit bin around each value of ``z_hat [B, H, W, C]`` (same shape)."""
        shape = z_hat.shape
        x = z_hat.reshape(-1, self.channels).T[:, None, :]
        lower = self.logits_cumulative(x - 0.5)
        upper = self.logits_cumulative(x + 0.5)
        # Evaluate both sigmoids on the side where they are small (sign flip), which keeps the
        # difference accurate far in the upper tail.
        sign = -jax.lax.stop_gradient(jnp.sign(lower + upper))
        lik = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
        lik = lower_bound(lik, self.likelihood_bound)
        return lik[:, 0, :].T.reshape(shape)

    def __call__(self, z: jax.Array, training: bool) -> tuple[jax.Array, jax.Array]:
        """Quantizes ``z`` and returns its likelihoods.

        Args:
          z: ``[B, H, W, C]`` hyper-latent.
          training: if True add uniform noise (rng stream ``"noise"``), else round around the medians.

        Returns:
          ``(z_hat, likelihoods)``, both ``[B, H, W, C]``.
        """
        if z.shape[-1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got z of shape {z.shape}")
        if training:
            z_hat = quantize(z, "noise", rng=self.make_rng("noise"))
        else:
            z_hat = quantize(z, "round", offset=jax.lax.stop_gradient(self.medians()))
        return z_hat, self.likelihood(z_hat)

    def loss(self) -> jax.Array:
        """Auxiliary quantile loss ``sum |logits_cumulative(quantiles) - target|`` (CompressAI).

        ``target = [-log(2/tail_mass - 1), 0, log(2/tail_mass - 1)]``: the lower/upper quantiles move
        to where the cumulative is ``tail_mass/2`` and ``1 - tail_mass/2`` and the middle one to the
        median. The density parameters are wrapped in ``stop_gradient`` here, so this loss trains
        the quantiles only (the density itself is trained by the rate term), and it can be added to
        the main loss without biasing the density.
        """
        t = np.log(2.0 / self.tail_mass - 1.0)
        target = jnp.asarray([-t, 0.0, t], jnp.float32)
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
        return jnp.sum(jnp.abs(logits - target))


def _uniform_init(lo: float, hi: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, lo, hi)

    return init


# ---------------------------------------------------------------------------------------------
# Host side (numpy): tables and coding.


def _bottleneck_params(variables_or_params: Mapping) -> dict:
    p = variables_or_params
    if "params" in p and "quantiles" not in p:
        p = p["params"]
    if "quantiles" not in p:
        raise ValueError("expected EntropyBottleneck params (with 'quantiles', 'matrix0', ...)")
    return {k: np.asarray(v, np.float64) for k, v in p.items()}


def medians(params: Mapping) -> np.ndarray:
    """``[C]`` float32 medians ``quantiles[:, 0, 1]`` of an ``EntropyBottleneck``'s params."""
    return np.asarray(_bottleneck_params(params)["quantiles"][:, 0, 1], np.float32)


def build_tables(variables_or_params: Mapping, precision: int = 16) -> IndexedTables:
    """One integer CDF per channel, over symbols ``round(z - median)`` (CompressAI's ``update``).

    Channel ``c`` covers ``[floor(q_lower - median), ceil(q_upper - median)]`` (at least ``{0}``);
    the mass outside (from the density itself) goes to the escape symbol.

    Args:
      variables_or_params: the module's ``variables`` or its ``params`` dict.
      precision: bits of the CDF total.

    Returns:
      :class:`IndexedTables` with ``C`` tables, ``offsets[c] = floor(q_lower - median)``.
    """
    p = _bottleneck_params(variables_or_params)
    q = p["quantiles"][:, 0, :]
    med = q[:, 1].astype(np.float32).astype(np.float64)
    minima = np.maximum(np.ceil(med - q[:, 0]), 0).astype(np.int64)
    maxima = np.maximum(np.ceil(q[:, 2] - med), 0).astype(np.int64)
    lengths = minima + maxima + 1
    lmax = int(lengths.max())
    c = q.shape[0]
    # Cumulative at the bin edges med - minima - 1/2 + k, k = 0..lmax; beyond a channel's length
    # the edges are not used.
    edges = (med - minima)[:, None] - 0.5 + np.arange(lmax + 1)[None, :]
    logits = _logits_cumulative(p, edges[:, None, :], _num_layers(p), np)[:, 0, :]
    from scipy.special import expit  # pylint: disable=g-import-not-at-top  # lazy: 0.2 s of start-up

    cdf_float = expit(logits)
    cdfs = np.full((c, lmax + 2), 1 << precision, np.int32)
    for ch in range(c):
        n = int(lengths[ch])
        lo = cdf_float[ch, 0]
        cum = np.concatenate([cdf_float[ch, : n + 1] - lo, [1.0]])  # regular symbols, then escape
        cdfs[ch, : n + 2] = cumulative_to_quantized_cdf(cum, precision)
    return IndexedTables(
        cdfs=cdfs,
        cdf_lengths=(lengths + 2).astype(np.int32),
        offsets=(-minima).astype(np.int32),
        precision=precision,
    )


@functools.lru_cache(maxsize=4)
def _channel_indexes(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[-1], dtype=np.int32), shape)


def symbols(z: np.ndarray, params: Mapping) -> np.ndarray:
    """z's integer symbols ``round(z - median)`` per channel (the encoder's side, int32)."""
    return np.rint(np.asarray(z, np.float32) - medians(params)).astype(np.int32)


def encode_symbols(z_sym: np.ndarray, tables: IndexedTables) -> bytes:
    """Range-codes z's symbols ``[..., C]`` with channel c's table (the host coder's z section)."""
    z_sym = np.asarray(z_sym)
    return rangecoder.encode_indexed(z_sym, _channel_indexes(z_sym.shape), tables)


def decode_symbols(data: bytes, shape: Sequence[int], tables: IndexedTables) -> np.ndarray:
    """Inverse of :func:`encode_symbols`: int32 symbols of ``shape``; ``z_hat = symbols + median``.

    Raises:
      BitstreamError: if ``data`` is malformed.
    """
    shape = tuple(int(s) for s in shape)
    return rangecoder.decode_indexed(data, _channel_indexes(shape), tables).reshape(shape)
