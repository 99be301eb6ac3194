"""Host-side compress/decompress: real range-coded bitstreams from a model and its weights.

`Codec` pads the image, runs the jitted analysis and synthesis of the `Compressor`, and hands the
latents to one `jaxlic.latent.host.HostCoder` call, which range codes z and then y in the order of
the model's latent codec; the sections go into a `jaxlic.coding.container`. Encoder and decoder
call the *same* jitted functions on the *same* inputs, and derive the symbols and the decoded
latents with the same numpy float32 operations, so decoding is bit-exact in a fresh process.

Stream layout (inside the container): section 0 = z (factorized prior), then the schedule's:
  * no context: section 1 = y;
  * checkerboard: section 1 = anchors, section 2 = non-anchors (He et al. 2021's two passes);
  * serial: section 1 = y, coded position by position in raster order (Minnen et al. 2018).

Variable-rate models (gain units, Cui et al. 2021, "Asymmetric Gained Deep Image Compression With
Continuous Rate Adaptation") code at a continuous rate parameter q; the header keeps it exactly,
as the bits of its float32 value in `Header.extra["rate"]` (a signed 32-bit integer; no change of
the container format), and the decoder runs the inverse gains at that same float32 value.
Fixed-rate streams carry no extra field and are byte-identical to those before variable rates.
"""

from __future__ import annotations

import math
import numbers
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import weights as weights_io
from jaxlic.coding import container
from jaxlic.coding.container import (
    EXACT_KEY,
    RATE_KEY,
    SYMBOLS_KEY,
    WEIGHTS_KEY,
    rate_from_extra,
    rate_to_extra,
)
from jaxlic.errors import BitstreamError, ImageError, ModelError
from jaxlic.latent.host import HostCoder
from jaxlic.models.compressor import Compressor
from jaxlic.rdcodec import RateView

__all__ = ["Codec", "RateView", "header_bytes", "padded_size", "to_input", "to_uint8"]

PAD = 64  # g_a and h_a down-sample by 2^6 in all


def padded_size(h: int, w: int) -> tuple[int, int]:
    return PAD * math.ceil(h / PAD), PAD * math.ceil(w / PAD)


def to_input(img: np.ndarray) -> jnp.ndarray:
    """uint8 [H,W,3] -> float32 [1,Hp,Wp,3] in [0,1], edge-padded to a multiple of 64."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
    h, w = img.shape[:2]
    hp, wp = padded_size(h, w)
    x = np.pad(img.astype(np.float32) / 255.0, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    return jnp.asarray(x[None])


def to_uint8(x_hat, h: int, w: int) -> np.ndarray:
    """float [1,Hp,Wp,3] -> uint8 [h,w,3] (clipped, rounded, cropped)."""
    x = np.asarray(x_hat)[0, :h, :w]
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def header_bytes(name: str, height: int, width: int, *, quality: int = 0, variable_rate: bool = False) -> int:
    """Size of a stream of this header with empty payload sections (the least a stream takes)."""
    extra = {WEIGHTS_KEY: 2**62, SYMBOLS_KEY: 2**31, EXACT_KEY: 1}
    if variable_rate:
        extra[RATE_KEY] = rate_to_extra(1.0)
    sections = [b"", b"", b""]
    return len(container.pack(container.Header(name, quality, height, width, extra), sections))


def _renamed_rate(rate, quality):
    """`rate`, or `quality`: the name the rate parameter had before it was renamed (deprecated)."""
    if quality is None:
        return rate
    if rate is not None:
        raise ModelError("give the rate parameter once: rate (quality is its old name)")
    return quality


def _bpp(out: dict, size: tuple[int, int]) -> float:
    bits = sum(-np.sum(np.log2(out["likelihoods"][k].astype(np.float64))) for k in ("y", "z"))
    return float(bits / (size[0] * size[1]))


class Codec:
    """A model with its weights, able to turn images into `.jlic` bytes and back.

    The `jaxlic.rdcodec.RDCodec` of a model: every argument of `compress` is validated here
    (`check`), so that callers (the command line, the evaluation) pass them on unchecked.

    Attributes:
      name: registry name of the model (stored in the header).
      quality: the integer quality index of the weights (stored in the header; 0 for the one
        weights file of a variable-rate model).
      tile, tile_margin: latent tile size and overlap for decoding large images (0: never tile);
        the default tiles images with a side over 1024 pixels.
      last_timings: seconds spent in the network (`network_s`) and the range coder (`coding_s`)
        by the last `compress` or `decompress` call; decoding also reports `synthesis_s` (g_s and
        post-processing, part of `network_s`), the part that does not depend on the context model.
      num_rates: trained rate points of a variable-rate model (0: fixed rate).
      rate_range: `(0.0, num_rates - 1.0)`, the rate parameters a variable-rate model codes at;
        None for a fixed-rate model.
      default_rate: the rate parameter `compress` uses when given none (None: fixed rate).
      last_rate: the rate parameter of the last `compress` or `decompress` (None: fixed rate).
      last_rate_search: the `jaxlic.ratecontrol.RateSearchResult` of the last targeted
        `compress` (its `note` says when the target was out of reach), else None.
      weights_id: the fingerprint of the decoder's parameters (`jaxlic.weights.fingerprint`),
        written into every stream and checked against it on decoding.
      exact: whether the entropy parameters come from the exact (integer) path, so that the
        streams decode on any machine.
    """

    def __init__(
        self,
        model: Compressor,
        variables,
        *,
        quality: int = 0,
        meta: dict | None = None,
        max_pixels: int = container.DEFAULT_MAX_PIXELS,
        tile: int = 64,
        tile_margin: int = 4,
    ):
        self.model = model
        self.cfg = model.cfg
        self.name = model.cfg.name
        self.quality = int(quality)
        self.meta = meta or {}
        self.max_pixels = max_pixels
        self.tile, self.tile_margin = tile, tile_margin
        self.variables = {"params": variables["params"]} if "params" in variables else {"params": variables}
        z_tables = self.meta.get("z_tables")
        if z_tables is not None:
            from jaxlic.coding.tables import tables_from_dict

            z_tables = tables_from_dict(z_tables)
        self._coder = HostCoder(model, self.variables, z_tables)
        self.weights_id = weights_io.fingerprint(self.variables["params"])
        self.exact = self._coder.exact
        self.last_timings: dict[str, float] = {}
        self.last_refine: dict | None = None
        self.num_rates = int(model.cfg.num_rates)
        self.rate_range = (0.0, float(self.num_rates - 1)) if self.num_rates else None
        from jaxlic.models.registry import VR_LAMBDAS, default_rate

        # The file's own rate points (weights of other lambda sets keep their default lambda).
        lambdas = self.meta.get("lambdas") or (VR_LAMBDAS if self.num_rates == len(VR_LAMBDAS) else None)
        self.default_rate = None
        if self.num_rates:
            self.default_rate = float(default_rate(lambdas)) if lambdas else self.rate_range[1] / 2
        self.last_rate: float | None = None
        self.last_rate_search = None
        self._refine_steps = {}  # per method, built on its first refinement (see `refine`)

        def jit(method):
            return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

        self._analysis = jit(Compressor.analysis)
        self._synthesis = jit(Compressor.synthesis)
        self._forward_eval = jit(Compressor.forward_eval)
        self._eval_latents = jit(Compressor.eval_latents)
        self._eval_latents_rate = jax.jit(
            lambda v, y, z, r: model.apply(v, y, z, rate=r, method=Compressor.eval_latents)
        )

    # ------------------------------------------------------------------ public API
    @property
    def variable_rate(self) -> bool:
        """Whether this codec codes at a continuous rate parameter."""
        return self.num_rates > 0

    def check_rate(self, q) -> np.float32:
        """`q` as the float32 rate parameter of this variable-rate model.

        Raises:
          ModelError: a fixed-rate model, or q not a finite number in `rate_range`.
        """
        if not self.variable_rate:
            raise ModelError(f"{self.name} is a fixed-rate model: it takes no rate parameter")
        try:
            value = float(q)
        except (TypeError, ValueError):
            raise ModelError(f"the rate parameter must be a number, got {q!r}") from None
        lo, hi = self.rate_range
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ModelError(f"rate parameter {q!r} of {self.name} is outside its range [{lo:g}, {hi:g}]")
        return np.float32(value)

    def _rate_args(self, q) -> tuple:
        """Extra arguments of the jitted networks: the rate as a float32 array (no recompiles)."""
        return (jnp.asarray(q, jnp.float32),) if q is not None else ()

    def check(
        self,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        target_bytes: float | None = None,
        refine_steps: int = 0,
        refine_method: str = "sga",
        size: tuple[int, int] | None = None,
    ) -> None:
        """Refuses what `compress` would refuse, before any work (the arguments are `compress`'s).

        Args:
          size: `(H, W)` of the image: also refuses a target size below the stream's header, which
            no stream meets (`compress` itself answers it with the smallest stream and a note).

        Raises:
          ModelError: one line: more than one of rate and the targets; a rate or target given
            to a fixed-rate model; a rate outside `rate_range`; a target that is not a positive
            number or lies below the header; refinement with a target, by an unknown method, or
            without the model's lambda in the weights' metadata.
        """
        given = [
            k
            for k, v in (("rate", rate), ("target_bpp", target_bpp), ("target_bytes", target_bytes))
            if v is not None
        ]
        if len(given) > 1:
            raise ModelError(
                f"give at most one of rate, target_bpp and target_bytes, not {' and '.join(given)}"
            )
        if given and not self.variable_rate:
            raise ModelError(f"{self.name} is a fixed-rate model: it takes no rate parameter or target size")
        if rate is not None:
            self.check_rate(rate)
        for target, unit in ((target_bpp, "bits per pixel"), (target_bytes, "bytes")):
            if target is not None and not (
                isinstance(target, numbers.Real)
                and not isinstance(target, bool)
                and math.isfinite(target)
                and target > 0
            ):
                raise ModelError(f"the target must be a positive number of {unit}, got {target!r}")
        if not (isinstance(refine_steps, numbers.Integral) and refine_steps >= 0):
            raise ModelError(f"refine_steps must be a non-negative integer, got {refine_steps!r}")
        if refine_steps > 0:
            from jaxlic.models.refine import METHODS

            if target_bpp is not None or target_bytes is not None:
                raise ModelError("latent refinement does not combine with a target size")
            if refine_method not in METHODS:
                raise ModelError(f"unknown refinement method {refine_method!r}; choose one of {METHODS}")
            self.lambda_at(rate)
        if size is not None and (target_bpp is not None or target_bytes is not None):
            h, w = size
            least = header_bytes(self.name, h, w, variable_rate=True)
            wanted = target_bytes if target_bytes is not None else target_bpp * h * w / 8
            if wanted < least:
                raise ModelError(
                    f"the target size ({wanted:.0f} bytes) is below the {least}-byte header of a {w}x{h} image"
                )

    def compress(
        self,
        img: np.ndarray,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        target_bytes: float | None = None,
        refine_steps: int = 0,
        refine_lr: float | None = None,
        refine_method: str = "sga",
        progress=None,
        quality: float | None = None,
    ) -> bytes:
        """uint8 image [H, W, 3] -> a complete `.jlic` stream (header, sections, checksum).

        Args:
          img: the image.
          rate: a variable-rate model's rate parameter in `rate_range` (a float; default
            `default_rate`); stored exactly in the header. Fixed-rate models take none.
          target_bpp, target_bytes: a variable-rate model searches the rate for a stream of this
            size (bits per pixel of the image, or bytes of the whole stream; ± 3%) by real range
            coding (`jaxlic.ratecontrol.search_rate`); out of reach targets give the nearest
            reachable stream, and `last_rate_search.note` says why.
          refine_steps: > 0 searches for better latents of this image first (encoder-side
            refinement, `jaxlic.models.refine`): slower encoding, the same decoder and format.
            Needs the model's lambda (`meta["lmbda"]`; a variable-rate model's `meta["lambdas"]`).
          refine_lr: Adam's step size of the refinement (default: the method's tuned one).
          refine_method: "sga" (soft rounding, the default) or "ste" (straight-through).
          progress: `progress(step, loss)` after each refinement step (progress bars).
          quality: the old name of `rate` (deprecated; kept for callers written before the rename).

        Raises:
          ModelError: arguments `check` refuses.
        """
        rate = _renamed_rate(rate, quality)
        self.check(
            rate=rate,
            target_bpp=target_bpp,
            target_bytes=target_bytes,
            refine_steps=refine_steps,
            refine_method=refine_method,
        )
        self.last_rate_search = None
        if target_bpp is not None or target_bytes is not None:
            return self._compress_to_target(img, target_bpp, target_bytes)
        q = self._rate_or_default(rate)
        return self._compress_at(img, q, refine_steps, refine_lr, refine_method, progress)

    def _compress_to_target(self, img, target_bpp, target_bytes) -> bytes:
        from jaxlic.ratecontrol import search_rate

        h, w = np.asarray(img).shape[:2]
        if target_bpp is not None:
            target_bytes = target_bpp * h * w / 8
        x = to_input(img)
        result = search_rate(
            lambda q: self._compress_at(img, np.float32(q), x=x), target_bytes, *self.rate_range
        )
        self.last_rate_search = result
        self.last_rate = float(np.float32(result.rate))
        return result.data

    def _compress_at(
        self, img, q, refine_steps=0, refine_lr=None, refine_method="sga", progress=None, x=None
    ):
        """One stream of `img` at rate parameter q (float32, None for fixed-rate models)."""
        h, w = np.asarray(img).shape[:2]
        t = {"network_s": 0.0, "coding_s": 0.0}
        x = to_input(img) if x is None else x
        t0 = time.perf_counter()
        y, z = _np(self._analysis(self.variables, x, *self._rate_args(q)))
        if refine_steps > 0:
            r = self.refine(
                x,
                y,
                z,
                (h, w),
                steps=refine_steps,
                lr=refine_lr,
                method=refine_method,
                progress=progress,
                rate=q,
            )
            y, z = r["y"], r["z"]
        t["network_s"] += time.perf_counter() - t0
        sections, check = self._coder.encode(y, z, t, self._rate_args(q))
        extra = {WEIGHTS_KEY: self.weights_id, SYMBOLS_KEY: check}
        if self.exact:
            extra[EXACT_KEY] = 1
        if q is not None:
            extra[RATE_KEY] = rate_to_extra(q)
        data = container.pack(container.Header(self.name, self.quality, h, w, extra), sections)
        self.last_timings = t
        self.last_rate = None if q is None else float(np.float32(q))
        return data

    def lambda_at(self, q: float | None = None) -> float:
        """The lambda the model was trained with; a variable-rate model's at rate parameter q,
        interpolated log-linearly between its trained points, as its gains are.

        Raises:
          ModelError: the weights' metadata lacks the lambda(s) (`lmbda`, `lambdas`).
        """
        if not self.variable_rate:
            if self.meta.get("lmbda") is None:
                raise ModelError(
                    "latent refinement needs the model's lambda (meta['lmbda'] of its weights file)"
                )
            return float(self.meta["lmbda"])
        lambdas = self.meta.get("lambdas")
        if not lambdas or len(lambdas) != self.num_rates:
            raise ModelError(
                "latent refinement needs the model's lambdas (meta['lambdas'] of its weights file)"
            )
        q = self._rate_or_default(q)
        return float(np.exp(np.interp(q, np.arange(self.num_rates), np.log(lambdas))))

    def refine(
        self,
        x,
        y,
        z,
        size,
        *,
        steps: int,
        lr: float | None = None,
        method: str = "sga",
        progress=None,
        rate: float | None = None,
    ) -> dict:
        """Refined latents of the padded image `x` (see `jaxlic.models.refine.refine_latents`);
        `rate`: a variable-rate model's rate parameter (that of `y` and `z`)."""
        from jaxlic.models import refine

        lmbda = self.lambda_at(rate)
        if method not in refine.METHODS:
            raise ModelError(f"unknown refinement method {method!r}; choose one of {refine.METHODS}")
        if method not in self._refine_steps:
            self._refine_steps[method] = refine.make_refine_step(self.model, method)
        result = refine.refine_latents(
            self.model,
            self.variables,
            x,
            y,
            z,
            lmbda=lmbda,
            steps=steps,
            lr=lr,
            size=size,
            callback=progress,
            method=method,
            refine_step=self._refine_steps[method],
            rate=self._rate_or_default(rate),
        )
        self.last_refine = result
        return result

    def decompress(self, data: bytes) -> np.ndarray:
        """A `.jlic` stream -> uint8 image [H, W, 3]. Raises BitstreamError on a bad stream."""
        x_hat, (h, w) = self.decompress_float(data)
        t0 = time.perf_counter()
        out = to_uint8(x_hat, h, w)
        self.last_timings["network_s"] += time.perf_counter() - t0
        return out

    def decompress_float(self, data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        """A `.jlic` stream -> (padded float reconstruction [1,Hp,Wp,3], (H, W)), before rounding."""
        header, sections = container.unpack(bytes(data), max_pixels=self.max_pixels)
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, not {self.name!r}")
        if header.quality != self.quality:
            raise ModelError(
                f"stream was made at quality {header.quality}, these weights are quality {self.quality}"
            )
        self.check_weights(header)
        q = self.rate_of(header)
        t = {"network_s": 0.0, "coding_s": 0.0}
        hp, wp = padded_size(header.height, header.width)
        y_hat, check = self._coder.decode(
            sections,
            y_shape=(1, hp // 16, wp // 16, self.cfg.M),
            z_shape=(1, hp // 64, wp // 64, self.cfg.N),
            timings=t,
            rate_args=self._rate_args(q),
        )
        if header.has_symbol_check and check != header.extra[SYMBOLS_KEY]:
            path = "exact" if header.exact else "float"
            raise BitstreamError(
                f"decoded latents fail the stream's symbol check ({path} entropy path): this machine "
                "derived other probabilities than the encoder"
                + ("" if header.exact else "; float streams decode only where they were written")
            )
        t0 = time.perf_counter()
        x_hat = self.synthesize(y_hat, q)
        t["synthesis_s"] = time.perf_counter() - t0
        t["network_s"] += t["synthesis_s"]
        self.last_timings = t
        self.last_rate = None if q is None else float(q)
        return x_hat, (header.height, header.width)

    def check_weights(self, header: container.Header) -> None:
        """Raises ModelError unless the stream was written with these weights.

        Version 2 streams name their weights (`weights_id`); version 1 streams (float entropy
        path) carry no fingerprint and decode with the float weights of their model name.
        """
        if header.version >= 2 and not (WEIGHTS_KEY in header.extra and SYMBOLS_KEY in header.extra):
            raise BitstreamError("corrupted stream: a version 2 stream without its weights or symbol check")
        if WEIGHTS_KEY not in header.extra:
            if self.exact:
                raise ModelError(
                    f"stream (format version {header.version}) was written with float {self.name} "
                    "weights; these weights are exact: load the float ones (jaxlic.zoo.for_stream)"
                )
            return
        wid = header.extra[WEIGHTS_KEY]
        if wid != self.weights_id:
            raise ModelError(
                f"stream needs {self.name} weights {wid:016x}, these are {self.weights_id:016x}: "
                "pass --weights FILE with the weights it was written with"
            )

    def rate_of(self, header: container.Header) -> np.float32 | None:
        """The rate parameter a stream's header carries (None for a fixed-rate model's stream).

        Raises:
          BitstreamError: a variable-rate model's stream without a valid rate, or a fixed-rate
            model's stream with one.
        """
        if not self.variable_rate:
            if RATE_KEY in header.extra:
                raise BitstreamError(
                    f"stream carries a rate parameter, but {self.name} is a fixed-rate model"
                )
            return None
        if RATE_KEY not in header.extra:
            raise BitstreamError(f"stream of variable-rate model {self.name} carries no rate parameter")
        q = np.float32(rate_from_extra(header.extra[RATE_KEY]))
        lo, hi = self.rate_range
        if not (math.isfinite(q) and lo <= q <= hi):
            raise BitstreamError(f"corrupted stream: rate parameter {q} outside [{lo:g}, {hi:g}]")
        return q

    def at_rate(self, rate: float) -> RateView:
        """This variable-rate codec held at a rate parameter (one RD point for evaluation)."""
        return RateView(self, float(self.check_rate(rate)))

    def synthesize(self, y_hat: np.ndarray, q=None) -> np.ndarray:
        """y_hat [1,h,w,M] -> x_hat [1,16h,16w,3]; by overlapping tiles when the image is large.

        Large images are synthesised in latent tiles of `tile` x `tile` with `tile_margin`
        latents of context on every inner side, keeping only each tile's centre. Peak memory is
        then bounded by the tile size instead of the image size; with the default margin (64
        pixels) the result differs from a whole-image synthesis by far less than 0.05 dB.
        """
        _, h, w, _ = y_hat.shape
        t, m = self.tile, self.tile_margin
        if not t or (h <= t and w <= t):
            return np.asarray(self._synthesis(self.variables, jnp.asarray(y_hat), *self._rate_args(q)))
        out = np.empty((1, 16 * h, 16 * w, 3), np.float32)
        for i0 in range(0, h, t):
            for j0 in range(0, w, t):
                i1, j1 = min(i0 + t, h), min(j0 + t, w)
                a0, b0 = max(i0 - m, 0), max(j0 - m, 0)
                a1, b1 = min(i1 + m, h), min(j1 + m, w)
                x = np.asarray(
                    self._synthesis(self.variables, jnp.asarray(y_hat[:, a0:a1, b0:b1]), *self._rate_args(q))
                )
                out[:, 16 * i0 : 16 * i1, 16 * j0 : 16 * j1] = x[
                    :, 16 * (i0 - a0) : 16 * (i1 - a0), 16 * (j0 - b0) : 16 * (j1 - b0)
                ]
        return out

    def _rate_or_default(self, rate):
        if not self.variable_rate:
            if rate is not None:
                raise ModelError(f"{self.name} is a fixed-rate model: it takes no rate parameter")
            return None
        return self.check_rate(self.default_rate if rate is None else rate)

    def forward_eval(
        self, img: np.ndarray, rate: float | None = None, *, quality: float | None = None
    ) -> dict:
        """Evaluation-mode forward pass on an image (padded as in `compress`); numpy outputs.

        `rate`: a variable-rate model's rate parameter (default `default_rate`); `quality` is its
        old name (deprecated).
        """
        q = self._rate_or_default(_renamed_rate(rate, quality))
        return _np(self._forward_eval(self.variables, to_input(img), *self._rate_args(q)))

    def estimate_bpp(
        self, img: np.ndarray, rate: float | None = None, *, quality: float | None = None
    ) -> float:
        """Model estimate of the bits per pixel (no range coding, no header) at `rate` (a
        variable-rate model's; default `default_rate`; `quality` is its old name, deprecated)."""
        return _bpp(self.forward_eval(img, _renamed_rate(rate, quality)), np.asarray(img).shape[:2])

    def estimate_bpp_of_latents(self, y, z, size: tuple[int, int]) -> float:
        """Model estimate of the bits per pixel of given latents (e.g. refined ones) of an image
        of `size` (H, W)."""
        y, z = jnp.asarray(y), jnp.asarray(z)
        if self.variable_rate:  # the rate only enters the synthesis, not the likelihoods
            out = self._eval_latents_rate(self.variables, y, z, jnp.float32(self.default_rate))
        else:
            out = self._eval_latents(self.variables, y, z)
        return _bpp(_np(out), size)
