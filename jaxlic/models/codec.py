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
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding import container
from jaxlic.errors import ImageError, ModelError
from jaxlic.latent.host import HostCoder
from jaxlic.models.compressor import Compressor

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


def _bpp(out: dict, size: tuple[int, int]) -> float:
    bits = sum(-np.sum(np.log2(out["likelihoods"][k].astype(np.float64))) for k in ("y", "z"))
    return float(bits / (size[0] * size[1]))


class Codec:
    """A model with its weights, able to turn images into `.jlic` bytes and back.

    Attributes:
      name: registry name of the model (stored in the header).
      quality: quality index (stored in the header).
      tile, tile_margin: latent tile size and overlap for decoding large images (0: never tile);
        the default tiles images with a side over 1024 pixels.
      last_timings: seconds spent in the network (`network_s`) and the range coder (`coding_s`)
        by the last `compress` or `decompress` call; decoding also reports `synthesis_s` (g_s and
        post-processing, part of `network_s`), the part that does not depend on the context model.
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
        self._coder = HostCoder(model, self.variables)
        self.last_timings: dict[str, float] = {}
        self.last_refine: dict | None = None
        self._refine_steps = {}  # per method, built on its first refinement (see `refine`)

        def jit(method):
            return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

        self._analysis = jit(Compressor.analysis)
        self._synthesis = jit(Compressor.synthesis)
        self._forward_eval = jit(Compressor.forward_eval)
        self._eval_latents = jit(Compressor.eval_latents)

    # ------------------------------------------------------------------ public API
    def compress(
        self,
        img: np.ndarray,
        *,
        refine_steps: int = 0,
        refine_lr: float | None = None,
        refine_method: str = "sga",
        progress=None,
    ) -> bytes:
        """uint8 image [H, W, 3] -> a complete `.jlic` stream (header, sections, checksum).

        Args:
          img: the image.
          refine_steps: > 0 searches for better latents of this image first (encoder-side
            refinement, `jaxlic.models.refine`): slower encoding, the same decoder and format.
            Needs the model's lambda (`meta["lmbda"]`, present in every jaxlic weights file).
          refine_lr: Adam's step size of the refinement (default: the method's tuned one).
          refine_method: "sga" (soft rounding, the default) or "ste" (straight-through).
          progress: `progress(step, loss)` after each refinement step (progress bars).
        """
        h, w = np.asarray(img).shape[:2]
        t = {"network_s": 0.0, "coding_s": 0.0}
        x = to_input(img)
        t0 = time.perf_counter()
        y, z = _np(self._analysis(self.variables, x))
        if refine_steps > 0:
            r = self.refine(
                x, y, z, (h, w), steps=refine_steps, lr=refine_lr, method=refine_method, progress=progress
            )
            y, z = r["y"], r["z"]
        t["network_s"] += time.perf_counter() - t0
        sections = self._coder.encode(y, z, t)
        data = container.pack(container.Header(self.name, self.quality, h, w), sections)
        self.last_timings = t
        return data

    def refine(
        self, x, y, z, size, *, steps: int, lr: float | None = None, method: str = "sga", progress=None
    ) -> dict:
        """Refined latents of the padded image `x` (see `jaxlic.models.refine.refine_latents`)."""
        from jaxlic.models import refine

        lmbda = self.meta.get("lmbda")
        if lmbda is None:
            raise ModelError("latent refinement needs the model's lambda (meta['lmbda'] of its weights file)")
        if method not in refine.METHODS:
            raise ModelError(f"unknown refinement method {method!r}; choose one of {refine.METHODS}")
        if method not in self._refine_steps:
            self._refine_steps[method] = refine.make_refine_step(self.model, float(lmbda), method)
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
        t = {"network_s": 0.0, "coding_s": 0.0}
        hp, wp = padded_size(header.height, header.width)
        y_hat = self._coder.decode(
            sections,
            y_shape=(1, hp // 16, wp // 16, self.cfg.M),
            z_shape=(1, hp // 64, wp // 64, self.cfg.N),
            timings=t,
        )
        t0 = time.perf_counter()
        x_hat = self.synthesize(y_hat)
        t["synthesis_s"] = time.perf_counter() - t0
        t["network_s"] += t["synthesis_s"]
        self.last_timings = t
        return x_hat, (header.height, header.width)

    def synthesize(self, y_hat: np.ndarray) -> np.ndarray:
        """y_hat [1,h,w,M] -> x_hat [1,16h,16w,3]; by overlapping tiles when the image is large.

        Large images are synthesised in latent tiles of `tile` x `tile` with `tile_margin`
        latents of context on every inner side, keeping only each tile's centre. Peak memory is
        then bounded by the tile size instead of the image size; with the default margin (64
        pixels) the result differs from a whole-image synthesis by far less than 0.05 dB.
        """
        _, h, w, _ = y_hat.shape
        t, m = self.tile, self.tile_margin
        if not t or (h <= t and w <= t):
            return np.asarray(self._synthesis(self.variables, jnp.asarray(y_hat)))
        out = np.empty((1, 16 * h, 16 * w, 3), np.float32)
        for i0 in range(0, h, t):
            for j0 in range(0, w, t):
                i1, j1 = min(i0 + t, h), min(j0 + t, w)
                a0, b0 = max(i0 - m, 0), max(j0 - m, 0)
                a1, b1 = min(i1 + m, h), min(j1 + m, w)
                x = np.asarray(self._synthesis(self.variables, jnp.asarray(y_hat[:, a0:a1, b0:b1])))
                out[:, 16 * i0 : 16 * i1, 16 * j0 : 16 * j1] = x[
                    :, 16 * (i0 - a0) : 16 * (i1 - a0), 16 * (j0 - b0) : 16 * (j1 - b0)
                ]
        return out

    def forward_eval(self, img: np.ndarray) -> dict:
        """Evaluation-mode forward pass on an image (padded as in `compress`); numpy outputs."""
        return _np(self._forward_eval(self.variables, to_input(img)))

    def estimate_bpp(self, img: np.ndarray) -> float:
        """Model estimate of the bits per pixel (no range coding, no header)."""
        return _bpp(self.forward_eval(img), np.asarray(img).shape[:2])

    def estimate_bpp_of_latents(self, y, z, size: tuple[int, int]) -> float:
        """Model estimate of the bits per pixel of given latents (e.g. refined ones) of an image
        of `size` (H, W)."""
        return _bpp(_np(self._eval_latents(self.variables, jnp.asarray(y), jnp.asarray(z))), size)
