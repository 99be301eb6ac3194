"""Host-side compress/decompress: real range-coded bitstreams from a model and its weights.

The network runs in jitted pieces of `Compressor` (analysis, hyper-synthesis, entropy parameters,
synthesis); the range coder runs on the host (numpy + constriction). Encoder and decoder call the
*same* jitted functions on the *same* inputs, and derive the symbols and the decoded latents with
the same numpy float32 operations, so decoding is bit-exact in a fresh process.

Stream layout (inside the `jaxlic.coding.container`): section 0 = z (factorized prior), then
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

from jaxlic.coding import container, rangecoder
from jaxlic.entropy import factorized, gaussian, mixture
from jaxlic.errors import BitstreamError, ImageError, ModelError
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


def _anchor_bool(h: int, w: int) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return (ii + jj) % 2 == 0


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
        eb = _np(self.variables["params"]["entropy_bottleneck"])
        self._z_tables = factorized.build_tables(eb)
        self._z_medians = np.asarray(factorized.medians(eb), np.float32)
        self.last_timings: dict[str, float] = {}
        self.last_refine: dict | None = None
        self._refine_steps = {}  # per method, built on its first refinement (see `refine`)

        def jit(method):
            return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

        self._analysis = jit(Compressor.analysis)
        self._hyper = jit(Compressor.hyper_synthesis)
        self._synthesis = jit(Compressor.synthesis)
        self._forward_eval = jit(Compressor.forward_eval)
        self._eval_latents = jit(Compressor.eval_latents)
        self._params_plain = jit(lambda m, hyper: m.coding_params(m.entropy_params(hyper)))
        self._params_anchor = jit(lambda m, hyper: m.coding_params(m.anchor_params(hyper)))
        self._params_nonanchor = jit(lambda m, hyper, ya: m.coding_params(m.nonanchor_params(hyper, ya)))
        self._params_step = jit(lambda m, patch, hp: m.coding_params(m.serial_step_params(patch, hp)))

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
        sections = self._code_latents(y=y, z=z, timings=t)
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
        y_hat = self._code_latents(
            sections=sections,
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

    # ------------------------------------------------------------------ latent coding
    def _code_latents(self, *, timings, y=None, z=None, sections=None, y_shape=None, z_shape=None):
        """Encodes (y, z given) -> sections, or decodes (sections given) -> y_hat.

        One function for both directions keeps the encoder's and the decoder's order of
        operations the same by construction.
        """
        encoding = sections is None
        c = self.cfg
        expected = {"none": 2, "serial": 2, "checkerboard": 3}[c.context]
        if not encoding and len(sections) != expected:
            raise BitstreamError(f"expected {expected} sections for {self.name}, found {len(sections)}")
        out_sections: list[bytes] = []

        def coded(fn, *args):
            t0 = time.perf_counter()
            r = fn(*args)
            timings["coding_s"] += time.perf_counter() - t0
            return r

        def net(fn, *args):
            t0 = time.perf_counter()
            r = _np(fn(self.variables, *args))
            timings["network_s"] += time.perf_counter() - t0
            return r

        # z: factorized prior, symbols relative to the per-channel medians.
        if encoding:
            z_shape = z.shape
        med = self._z_medians
        ch = np.broadcast_to(np.arange(z_shape[-1]), z_shape)
        if encoding:
            z_sym = np.round(z - med).astype(np.int32)
            out_sections.append(coded(rangecoder.encode_indexed, z_sym, ch, self._z_tables))
        else:
            z_sym = coded(rangecoder.decode_indexed, sections[0], ch, self._z_tables).reshape(z_shape)
        z_hat = z_sym.astype(np.float32) + med
        hyper = net(self._hyper, jnp.asarray(z_hat))
        if encoding:
            y_shape = y.shape

        if c.context == "none":
            p = net(self._params_plain, hyper)
            sel = np.ones(y_shape[1:3], bool)
            if encoding:
                out_sections.append(coded(self._encode_y, y[0][sel], self._select(p, sel)))
                return out_sections
            y_hat = np.zeros(y_shape, np.float32)
            y_hat[0][sel] = coded(self._decode_y, sections[1], self._select(p, sel))
            return y_hat

        if c.context == "checkerboard":
            amask = _anchor_bool(*y_shape[1:3])
            y_hat = np.zeros(y_shape, np.float32)
            for step, sel in enumerate((amask, ~amask)):
                p = (
                    net(self._params_anchor, hyper)
                    if step == 0
                    else net(self._params_nonanchor, hyper, jnp.asarray(y_hat))
                )
                ps = self._select(p, sel)
                if encoding:
                    data, values = coded(self._encode_y, y[0][sel], ps, True)
                    out_sections.append(data)
                else:
                    values = coded(self._decode_y, sections[1 + step], ps)
                y_hat[0][sel] = values
            return out_sections if encoding else y_hat

        return self._code_serial(y, hyper, y_shape, sections, out_sections, timings)

    @staticmethod
    def _select(p: dict, sel: np.ndarray) -> dict:
        """Parameters at the positions `sel` [h, w] -> arrays [n, M] (or [n, M, K])."""
        return {k: v[0][sel] for k, v in p.items()}

    def _encode_y(self, y_sel, p, return_values=False):
        """Codes latents `y_sel` [n, M] under params `p`; optionally returns the decoded values."""
        e = self.cfg.entropy
        if e == "gmm":
            sym = np.round(y_sel).astype(np.int32)
            data = mixture.encode_mixture(sym.reshape(-1), *self._mix_args(p))
            values = sym.astype(np.float32)
        else:
            means = p["means"] if e == "gaussian" else np.zeros_like(y_sel)
            sym = np.round(y_sel - means).astype(np.int32)
            data = gaussian.encode_gaussian(sym, p["scales"])
            values = sym.astype(np.float32) + means
        return (data, values) if return_values else data

    def _decode_y(self, data, p):
        e = self.cfg.entropy
        if e == "gmm":
            sym = mixture.decode_mixture(data, *self._mix_args(p))
            return sym.reshape(p["means"].shape[:-1]).astype(np.float32)
        sym = gaussian.decode_gaussian(data, p["scales"])
        values = sym.astype(np.float32)
        return values + p["means"] if e == "gaussian" else values

    def _mix_args(self, p):
        k = self.cfg.K
        return (p["weights"].reshape(-1, k), p["means"].reshape(-1, k), p["scales"].reshape(-1, k))

    # ------------------------------------------------------------------ serial context
    def _code_serial(self, y, hyper, y_shape, sections, out_sections, timings):
        """Serial (raster-order) coding: one jitted parameter step per latent position."""
        encoding = sections is None
        if self.cfg.entropy != "gaussian":
            raise ModelError("serial context coding supports the mean-scale Gaussian only")
        _, h, w, m = y_shape
        tables = gaussian.build_tables()
        y_pad = np.zeros((h + 4, w + 4, m), np.float32)
        if encoding:
            stream = rangecoder.StreamEncoder()
        else:
            stream = rangecoder.StreamDecoder(sections[1])
        net_s = coding_s = 0.0
        for i in range(h):
            for j in range(w):
                t0 = time.perf_counter()
                p = self._params_step(
                    self.variables, y_pad[None, i : i + 5, j : j + 5], hyper[:, i : i + 1, j : j + 1]
                )
                means = np.asarray(p["means"]).reshape(m)
                idx = gaussian.scale_indexes(np.asarray(p["scales"]).reshape(m))
                t1 = time.perf_counter()
                if encoding:
                    sym = np.round(y[0, i, j] - means).astype(np.int32)
                    stream.encode_indexed(sym, idx, tables)
                else:
                    sym = stream.decode_indexed(idx, tables)
                y_pad[i + 2, j + 2] = sym.astype(np.float32) + means
                t2 = time.perf_counter()
                net_s += t1 - t0
                coding_s += t2 - t1
        timings["network_s"] += net_s
        timings["coding_s"] += coding_s
        if encoding:
            out_sections.append(stream.to_bytes())
            return out_sections
        return y_pad[None, 2 : h + 2, 2 : w + 2]
