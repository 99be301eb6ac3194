"""Host-side range coding of a hyperprior model's latents (z, then y), with its weights.

z is coded under the factorized prior (Ballé et al. 2018), as symbols round(z - median); y is coded
by the model's `LatentCodec` (its family, in its schedule's order) with parameters from jitted
pieces of the model. Encoder and decoder call the *same* jitted functions on the *same* inputs and
derive the symbols and decoded values with the same numpy float32 operations, so decoding is
bit-exact in a fresh process.

Stream sections: 0 = z, then the schedule's y sections.
"""

from __future__ import annotations

import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.entropy import factorized
from jaxlic.errors import BitstreamError

__all__ = ["HostCoder"]


def to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def symbols_crc(z_sym: np.ndarray, y_hat: np.ndarray) -> int:
    """CRC32 of the decoded latents: z's symbols (int32) and y_hat (float32 bits).

    Encoder and decoder both compute it; a mismatch means the decoder derived other entropy
    parameters than the encoder (another machine's float path, or a bug), never a silent image.
    """
    crc = zlib.crc32(np.ascontiguousarray(z_sym, "<i4").tobytes())
    return zlib.crc32(np.ascontiguousarray(y_hat, "<f4").tobytes(), crc) & 0xFFFFFFFF


class _Run:
    """What a schedule's host loop needs: jitted parameter functions and timers.

    Accumulates seconds in the network (`network_s`) and in the range coder (`coding_s`).
    """

    def __init__(self, coder: HostCoder, timings: dict):
        self.coder, self.timings = coder, timings

    def net(self, fn, *args):
        t0 = time.perf_counter()
        r = to_numpy(fn(self.coder.variables, *(jax.tree_util.tree_map(jnp.asarray, a) for a in args)))
        self.timings["network_s"] += time.perf_counter() - t0
        return r

    def params(self, i: int, *args) -> dict:
        """Coding parameters from the latent codec's i-th parameter function (numpy)."""
        return self.net(self.coder.param_fns[i], *args)

    def coded(self, fn, *args):
        t0 = time.perf_counter()
        r = fn(*args)
        self.timings["coding_s"] += time.perf_counter() - t0
        return r


class HostCoder:
    """Range codes the latents of a `Compressor` with given variables.

    Args:
      model: the `Compressor` (its `latent` is the `LatentCodec`; `hyper_synthesis` is jitted).
      variables: `{"params": ...}`.
      z_tables: z's `IndexedTables` as shipped with the weights (`meta["z_tables"]`); None
        builds them from the factorized prior.
    """

    def __init__(self, model, variables, z_tables=None):
        self.model = model
        self.latent = model.latent
        self.variables = variables
        eb = to_numpy(variables["params"]["entropy_bottleneck"])
        # z's integer CDFs: those shipped with the weights (computed once, so every machine
        # codes z alike), else built here from the density (float maths: portable only where the
        # maths library agrees).
        self.z_tables = factorized.build_tables(eb) if z_tables is None else z_tables
        self.z_medians = np.asarray(factorized.medians(eb), np.float32)

        def jit(method):
            return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

        #: Whether the entropy parameters come from the exact (integer) path.
        self.exact = bool(model.cfg.is_exact)
        if self.exact:
            from jaxlic.latent.exact import IntegerView

            self.hyper_fn = jit("hyper_synthesis_exact")
            self.param_fns = tuple(
                jit(lambda net, *a, f=f: f(IntegerView(net), *a)) for f in self.latent.param_functions()
            )
        else:
            self.hyper_fn = jit("hyper_synthesis")
            self.param_fns = tuple(jit(f) for f in self.latent.param_functions())

    @property
    def num_sections(self) -> int:
        return 1 + self.latent.num_sections

    def _z(self, run: _Run, z_sym: np.ndarray, rate_args: tuple) -> np.ndarray:
        if self.exact:  # the integer path starts from the symbols themselves
            return run.net(self.hyper_fn, z_sym, *rate_args)
        z_hat = z_sym.astype(np.float32) + self.z_medians
        return run.net(self.hyper_fn, z_hat, *rate_args)

    def encode(
        self, y: np.ndarray, z: np.ndarray, timings: dict, rate_args: tuple = ()
    ) -> tuple[list[bytes], int]:
        """Latents y [1, h, w, M], z [1, h/4, w/4, N] -> (the stream sections, `symbols_crc`).

        `rate_args`: the hyper-synthesis's extra arguments (a variable-rate model's rate parameter).
        """
        run = _Run(self, timings)
        z_sym = np.round(z - self.z_medians).astype(np.int32)
        sections = [run.coded(factorized.encode_symbols, z_sym, self.z_tables)]
        hyper = self._z(run, z_sym, rate_args)
        y_sections, y_hat = self.latent.encode(run, hyper, y)
        return sections + y_sections, symbols_crc(z_sym, y_hat)

    def decode(
        self, sections, y_shape, z_shape, timings: dict, rate_args: tuple = ()
    ) -> tuple[np.ndarray, int]:
        """The stream sections -> (y_hat [1, h, w, M] float32, `symbols_crc`); `rate_args` as
        for `encode`.

        Raises:
          BitstreamError: on a wrong number of sections or a malformed section.
        """
        if len(sections) != self.num_sections:
            raise BitstreamError(f"expected {self.num_sections} sections, found {len(sections)}")
        run = _Run(self, timings)
        z_sym = run.coded(factorized.decode_symbols, sections[0], z_shape, self.z_tables)
        hyper = self._z(run, z_sym, rate_args)
        y_hat = self.latent.decode(run, hyper, sections[1:], y_shape)
        return y_hat, symbols_crc(z_sym, y_hat)
