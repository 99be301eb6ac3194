"""The codec protocol: what the command line and the evaluation ask of a learned image codec.

`RDCodec` is the contract (CompressAI's ``compress``/``decompress``, plus the model's own rate
estimate and the rates the codec codes at). Three classes implement it:

* `jaxlic.models.codec.Codec`: a model with its weights; it validates every argument;
* `RateView`: a variable-rate codec held at one rate parameter (one point of a curve);
* `RefinedCodec`: a codec that refines each image's latents before coding (a better encoder).

The two names of a rate setting:

* ``quality``: the **integer quality index** of a fixed-rate model's weights (one weights file per
  index, stored in every stream's header); a variable-rate model has one weights file, index 0.
* ``rate``: the **continuous rate parameter** of a variable-rate model (gain units, Cui et al.
  2021), a float in ``rate_range`` stored exactly in the stream header (its ``rate`` field).
  ``rate_range`` is None for a fixed-rate model: its one rate is its ``quality``.

This module imports neither JAX nor numpy; the wrappers work on any `RDCodec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from jaxlic.errors import ModelError

#: Refinement methods a codec may take (`jaxlic.models.refine.METHODS`).
REFINE_METHODS = ("sga", "ste")


@runtime_checkable
class RDCodec(Protocol):
    """A learned image codec as the command line and `jaxlic.evaluation` use it.

    Attributes:
      name: registry name of the model (stored in the header).
      quality: the integer quality index of the weights (0 for a variable-rate model).
      rate_range: ``(lo, hi)`` of a variable-rate model's continuous rate parameter; None for a
        fixed-rate model.
      default_rate: the rate parameter `compress` uses when given none (None: fixed-rate).
      last_rate: the rate parameter of the last `compress` or `decompress` (None: fixed-rate).
      last_rate_search: the `jaxlic.ratecontrol.RateSearchResult` of the last targeted
        `compress` (its ``note`` says when the target was out of reach), else None.
      last_refine: the refinement result of the last refined `compress` (``loss_init``, ``loss``,
        ``y``, ``z``), else None.
      last_timings: seconds of the last call: ``network_s`` and ``coding_s`` at least.
      max_pixels: `decompress` refuses streams that declare more pixels (settable).
    """

    name: str
    quality: int
    rate_range: tuple[float, float] | None
    default_rate: float | None
    last_rate: float | None
    last_rate_search: Any
    last_refine: dict | None
    last_timings: dict
    max_pixels: int

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
        """Raises `jaxlic.errors.ModelError` (one line) for arguments `compress` would refuse.

        `size` (H, W): also checks that a target is not below the stream's header for that image.
        """
        ...

    def compress(
        self,
        img,
        *,
        rate: float | None = None,
        target_bpp: float | None = None,
        target_bytes: float | None = None,
        refine_steps: int = 0,
        refine_method: str = "sga",
        progress: Callable[[int, float], None] | None = None,
    ) -> bytes:
        """uint8 image [H, W, 3] -> a complete ``.jlic`` stream.

        At most one of `rate` (variable-rate models; default `default_rate`), `target_bpp` and
        `target_bytes` (variable-rate models: the rate whose stream has this size, ± 3%).
        `refine_steps` > 0 refines the latents first; `progress(step, loss)` after each step.
        """
        ...

    def decompress(self, data: bytes):
        """A ``.jlic`` stream -> uint8 image [H, W, 3]."""
        ...

    def estimate_bpp(self, img, *, rate: float | None = None) -> float:
        """The model's estimate of the bits per pixel of `img` (no range coding, no header);
        at `rate` (default: `default_rate`) for a variable-rate model."""
        ...


def is_variable_rate(codec: RDCodec) -> bool:
    """Whether a codec codes at a continuous rate parameter."""
    return codec.rate_range is not None


def setting(codec: RDCodec) -> int | float:
    """The label of the one rate a codec codes at by default: its rate parameter (variable-rate
    models, as a float) or its quality index (an int)."""
    return float(codec.default_rate) if is_variable_rate(codec) else int(codec.quality)


def describe(codec: RDCodec) -> str:
    """``quality Q`` of a fixed-rate codec; ``rate parameter q (range lo..hi)`` of a variable-rate
    one, after a call (``last_rate``)."""
    if is_variable_rate(codec) and codec.last_rate is not None:
        lo, hi = codec.rate_range
        return f"rate parameter {codec.last_rate:.6g} (range {lo:g}..{hi:g})"
    return f"quality {codec.quality}"


class RateView:
    """A variable-rate codec held at one rate parameter: one RD point of its curve.

    An `RDCodec` whose `rate_range` is ``(rate, rate)``: `compress(img)` codes at `rate`; any
    other rate, and target sizes, are refused.
    """

    def __init__(self, codec: RDCodec, rate: float):
        if not is_variable_rate(codec):
            raise ModelError(f"{codec.name} is a fixed-rate model: it takes no rate parameter")
        codec.check(rate=rate)
        self.codec, self.rate = codec, float(rate)
        self.name, self.quality = codec.name, codec.quality
        self.rate_range = (self.rate, self.rate)
        self.default_rate = self.rate

    def check(
        self, *, rate=None, target_bpp=None, target_bytes=None, refine_steps=0, refine_method="sga", size=None
    ):
        if target_bpp is not None or target_bytes is not None:
            raise ModelError(f"{self.name} held at rate parameter {self.rate:g} takes no target size")
        if rate is not None and float(rate) != self.rate:
            raise ModelError(f"{self.name} is held at rate parameter {self.rate:g}, not {rate!r}")
        self.codec.check(rate=self.rate, refine_steps=refine_steps, refine_method=refine_method, size=size)

    def compress(self, img, *, rate=None, target_bpp=None, target_bytes=None, **refine) -> bytes:
        """`compress` of the codec at this rate (`refine`: its refinement arguments)."""
        self.check(rate=rate, target_bpp=target_bpp, target_bytes=target_bytes)
        return self.codec.compress(img, rate=self.rate, **refine)

    def decompress(self, data: bytes):
        return self.codec.decompress(data)

    def estimate_bpp(self, img, *, rate=None) -> float:
        self.check(rate=rate)
        return self.codec.estimate_bpp(img, rate=self.rate)

    def estimate_bpp_of_latents(self, y, z, size: tuple[int, int]) -> float:
        return self.codec.estimate_bpp_of_latents(y, z, size)

    last_rate = property(lambda self: self.codec.last_rate)
    last_rate_search = property(lambda self: self.codec.last_rate_search)
    last_refine = property(lambda self: self.codec.last_refine)
    last_timings = property(lambda self: self.codec.last_timings)
    max_pixels = property(
        lambda self: self.codec.max_pixels, lambda self, value: setattr(self.codec, "max_pixels", value)
    )


class RefinedCodec:
    """A codec that refines each image's latents for `steps` steps before coding them.

    Evaluated as its own curve, named ``<model>+refine<steps>`` (``+refine<steps>-ste`` for the
    straight-through method): the same decoder reads its streams, so the difference to the plain
    curve is the encoder's amortization gap that refinement closes. Its `estimate_bpp` is the
    model's rate of the latents the last `compress` (of that image) coded, so it wraps a
    `jaxlic.models.codec.Codec` or a `RateView` of one (their `estimate_bpp_of_latents`).
    """

    def __init__(self, codec: RDCodec, steps: int, method: str = "sga"):
        if method not in REFINE_METHODS:
            raise ModelError(f"unknown refinement method {method!r}; choose one of {REFINE_METHODS}")
        self.codec, self.steps, self.method = codec, int(steps), method
        self.name = f"{codec.name}+refine{self.steps}" + ("" if method == "sga" else f"-{method}")
        self.quality, self.rate_range, self.default_rate = codec.quality, codec.rate_range, codec.default_rate

    def check(
        self, *, rate=None, target_bpp=None, target_bytes=None, refine_steps=0, refine_method="sga", size=None
    ):
        self.codec.check(
            rate=rate,
            target_bpp=target_bpp,
            target_bytes=target_bytes,
            refine_steps=self.steps,
            refine_method=self.method,
            size=size,
        )

    def compress(
        self,
        img,
        *,
        rate=None,
        target_bpp=None,
        target_bytes=None,
        refine_steps=0,
        refine_method="sga",
        progress=None,
    ) -> bytes:
        """`compress` of the codec with this codec's refinement (which `refine_steps` may not change)."""
        if refine_steps and (refine_steps, refine_method) != (self.steps, self.method):
            raise ModelError(f"{self.name} refines by {self.steps} {self.method} steps, not {refine_steps}")
        return self.codec.compress(
            img,
            rate=rate,
            target_bpp=target_bpp,
            target_bytes=target_bytes,
            refine_steps=self.steps,
            refine_method=self.method,
            progress=progress,
        )

    def decompress(self, data: bytes):
        return self.codec.decompress(data)

    def estimate_bpp(self, img, *, rate=None) -> float:
        """The model's rate of the latents that the last `compress` (of `img`) coded."""
        r = self.codec.last_refine
        if r is None:
            raise ModelError(f"{self.name}: its rate estimate is that of the last compress; compress first")
        return self.codec.estimate_bpp_of_latents(r["y"], r["z"], img.shape[:2])

    last_rate = property(lambda self: self.codec.last_rate)
    last_rate_search = property(lambda self: self.codec.last_rate_search)
    last_refine = property(lambda self: self.codec.last_refine)
    last_timings = property(lambda self: self.codec.last_timings)
    max_pixels = property(
        lambda self: self.codec.max_pixels, lambda self, value: setattr(self.codec, "max_pixels", value)
    )
