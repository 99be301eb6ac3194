"""Rate control: the continuous rate parameter that makes a stream of a target size.

A variable-rate model (``jaxlic.layers.gain``) codes an image at any rate parameter ``q`` in its
range; the size of the real range-coded stream grows with ``q``, but only through the image, so the
search runs the real encoder. It bisects ``q`` on the logarithm of the size (the rate is roughly
exponential in ``q`` between trained points), keeps the stream closest to the target among those
not larger than ``(1 + tolerance)`` times it, and stops as soon as one lies within the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from jaxlic.errors import JaxlicError

DEFAULT_TOLERANCE = 0.03
MAX_ITERATIONS = 14


@dataclass(frozen=True)
class RateSearchResult:
    """The stream a rate search chose.

    Attributes:
        rate: the rate parameter it was coded at (``quality``: its old name, deprecated).
        data: the stream.
        within_tolerance: whether ``len(data)`` lies within the tolerance of the target.
        note: a one-line explanation when it does not (the target is out of the model's reach).
    """

    rate: float
    data: bytes
    within_tolerance: bool
    note: str = ""

    @property
    def quality(self) -> float:
        """The old name of `rate` (deprecated)."""
        return self.rate


def search_rate(
    compress_at: Callable[[float], bytes],
    target_bytes: float,
    lo: float,
    hi: float,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> RateSearchResult:
    """Finds a rate parameter in ``[lo, hi]`` whose stream is ``target_bytes`` long (± tolerance).

    Args:
        compress_at: codes the image at a rate parameter and returns the stream.
        target_bytes: the wanted stream size in bytes (> 0).
        lo, hi: the model's range of rate parameters.
        tolerance: relative tolerance on the size.
        max_iterations: the most encodes after the two ends.

    Returns:
        The :class:`RateSearchResult`. Out of reach targets give the nearest end of the range
        with ``within_tolerance=False`` and a note.

    Raises:
        JaxlicError: a target that is not a positive finite number, or an empty range.
    """
    if not (isinstance(target_bytes, int | float) and math.isfinite(target_bytes) and target_bytes > 0):
        raise JaxlicError(f"the target size must be a positive number of bytes, got {target_bytes!r}")
    if not lo <= hi:
        raise JaxlicError(f"empty range of rate parameters [{lo}, {hi}]")

    def off(data: bytes) -> float:
        return abs(len(data) - target_bytes) / target_bytes

    def at_end(q: float, data: bytes, which: str, side: str) -> RateSearchResult:
        """The result at one end of the range: within tolerance, or the nearest with a note."""
        ok = off(data) <= tolerance
        note = (
            ""
            if ok
            else (
                f"the {which} stream this model makes of this image is {len(data)} bytes "
                f"(rate parameter {q:g}), {side} the target of {target_bytes:.0f} bytes"
            )
        )
        return RateSearchResult(float(q), data, ok, note)

    low_data = compress_at(lo)
    if len(low_data) >= target_bytes * (1 - tolerance):
        return at_end(lo, low_data, "smallest", "above")
    high_data = compress_at(hi)
    if len(high_data) <= target_bytes * (1 + tolerance):
        return at_end(hi, high_data, "largest", "below")

    best_q, best = float(lo), low_data  # the largest stream not above the target so far
    a, b = (lo, len(low_data)), (hi, len(high_data))
    for _ in range(max_iterations):
        # Secant step on log(size), kept inside the bracket; bisection when it stalls.
        la, lb, lt = math.log(a[1]), math.log(b[1]), math.log(target_bytes)
        q = a[0] + (b[0] - a[0]) * ((lt - la) / (lb - la) if lb > la else 0.5)
        q = min(max(q, a[0] + 0.05 * (b[0] - a[0])), b[0] - 0.05 * (b[0] - a[0]))
        data = compress_at(q)
        if off(data) <= tolerance:
            return RateSearchResult(float(q), data, True)
        if len(data) < target_bytes:
            a = (q, len(data))
            if len(data) > len(best):
                best_q, best = q, data
        else:
            b = (q, len(data))
    note = (
        f"no rate parameter gave {target_bytes:.0f} bytes ± {100 * tolerance:g}% "
        f"in {max_iterations} encodes; the nearest below is {len(best)} bytes"
    )
    return RateSearchResult(float(best_q), best, False, note)


#: The old name of `search_rate` (deprecated).
search_quality = search_rate
