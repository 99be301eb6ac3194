"""Writes jaxlic/entropy/exact_tables.npz: the integer constants of the exact entropy coder.

  python tools/make_exact_tables.py [OUT.npz]

Every constant is computed with Python's :mod:`decimal` module at 60 significant digits
(``Decimal.exp``, ``ln`` and ``sqrt`` are correctly rounded; the Gaussian CDF is summed below with
a series of positive terms) and then rounded to an integer. No floating-point operation decides
any stored value, so the file is the same on every machine; :mod:`jaxlic.entropy.exact` only
reads it. Each rounding is checked to lie far (more than ``1e-40`` relative) from a rounding
boundary, so an error in the last digits of the 60-digit arithmetic could not change a stored
integer either (the script fails instead).

Stored arrays (all int64; see :mod:`jaxlic.entropy.exact` for their use):

* ``sigma_q32 [256]``: ``round(sigma_g 2**32)``, ``sigma_g = 0.11 (256 / 0.11)**(g / 255)``;
* ``mid_q32 [255]``: ``floor(sqrt(sigma_g sigma_{g+1}) 2**32)``;
* ``inv [256]``: ``round(2**INV_BITS / (64 sigma_g))``;
* ``phi [2 * 8 * 2**PHI_FRAC_BITS + 1]``: ``round(2**PHI_BITS Phi(i / 2**PHI_FRAC_BITS))`` for
  ``i`` in ``[-8 * 2**PHI_FRAC_BITS, 8 * 2**PHI_FRAC_BITS]``;
* ``support_radius [256]``: ``ceil(4 sigma_g)``;
* ``table_radius [256]``: ``ceil(z sigma_g)`` with ``z = Phi^-1(1 - 1e-9 / 2)``;
* ``exp_table [257]``: ``max(1, round(2**20 exp(-j / 16)))``;
* ``meta``: the bit widths the tables were made for (checked when the module loads them).
"""

from __future__ import annotations

import argparse
import decimal
import pathlib
import sys
import time
from decimal import Decimal

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jaxlic.entropy import exact  # noqa: E402  (the bit widths have one home: the module)

PREC = 60  # significant decimal digits of every intermediate result
_GUARD = Decimal("1e-40")  # relative distance a value must keep from its rounding boundary
_TAIL_MASS = Decimal("1e-9")  # Gaussian tables: total probability outside the table
_SUPPORT_STDS = 4  # mixture support half-width in scales
_SIGMA_MIN, _SIGMA_MAX = Decimal("0.11"), Decimal(256)
_PI_DIGITS = "3.14159265358979323846264338327950288419716939937510"  # cross-check of _pi()


def _context() -> decimal.Context:
    return decimal.Context(prec=PREC, rounding=decimal.ROUND_HALF_EVEN, Emax=999999, Emin=-999999)


def _to_int(x: Decimal, rounding: str) -> int:
    """Rounds ``x`` (``decimal.ROUND_FLOOR``, ``ROUND_CEILING`` or ``ROUND_HALF_EVEN``), refusing near-ties.

    An exactly representable boundary case (an integer for floor / ceil, an exact half for
    rounding) is fine: it is exact. Anything closer than ``_GUARD`` (relative) to the boundary
    but not on it could round differently with a few more digits, so it raises.
    """
    frac = x - x.to_integral_value(rounding=decimal.ROUND_FLOOR)
    dist = abs(frac - Decimal("0.5")) if rounding == decimal.ROUND_HALF_EVEN else min(frac, 1 - frac)
    if dist != 0 and dist < _GUARD * max(abs(x), Decimal(1)):
        raise ArithmeticError(f"{x} is too close to a rounding boundary")
    return int(x.to_integral_value(rounding=rounding))


def _atan_inv(n: int) -> Decimal:
    """``atan(1 / n)`` by its Taylor series (alternating, terms shrink by ``n**2``)."""
    x = Decimal(1) / n
    x2, term, total, k = x * x, x, x, 0
    eps = Decimal(10) ** -(PREC + 2)
    while abs(term) > eps:
        k += 1
        term = -term * x2
        total += term / (2 * k + 1)
    return total


def _pi() -> Decimal:
    """Machin's formula ``pi = 16 atan(1/5) - 4 atan(1/239)``."""
    return 16 * _atan_inv(5) - 4 * _atan_inv(239)


class _Normal:
    """The standard normal CDF in :class:`~decimal.Decimal` arithmetic."""

    def __init__(self):
        self.inv_sqrt_2pi = 1 / (2 * _pi()).sqrt()
        self.eps = Decimal(10) ** -(PREC + 2)

    def _series(self, x: Decimal) -> Decimal:
        """``sum_n x**(2n+1) / (1 3 5 ... (2n+1))`` for ``x > 0`` (all terms positive).

        ``Phi(x) = 1/2 + pdf(x) * series(x)`` (Abramowitz & Stegun 26.2.11). With no cancellation the
        relative error is a few units of the last digit per term. Once ``x**2 / (2n+3) < 1/2`` the
        rest of the sum is below the last term, so stopping when that term is below ``eps`` of the
        sum bounds the truncation error by ``eps`` (relative). At ``x = 8`` this takes about 150
        terms; ``Phi(8)`` then agrees with the continued fraction of the upper tail to 50 digits
        (:func:`self_check`).
        """
        x2 = x * x
        term = total = x
        n = 0
        while True:
            n += 1
            term = term * x2 / (2 * n + 1)
            total += term
            if 2 * x2 < 2 * n + 3 and term < self.eps * total:
                return total

    def pdf(self, x: Decimal) -> Decimal:
        return (-x * x / 2).exp() * self.inv_sqrt_2pi

    def cdf(self, x: Decimal) -> Decimal:
        """``Phi(x)`` (exact ``1/2`` at zero, ``1 - Phi(-x)`` below zero)."""
        if x == 0:
            return Decimal("0.5")
        if x < 0:
            return 1 - self.cdf(-x)
        return Decimal("0.5") + self.pdf(x) * self._series(x)

    def upper_tail_cf(self, x: Decimal, terms: int = 400) -> Decimal:
        """``1 - Phi(x)`` for ``x > 0`` by the continued fraction ``pdf(x) / (x + 1/(x + 2/(x + ...)))``."""
        acc = x
        for k in range(terms, 0, -1):
            acc = x + k / acc
        return self.pdf(x) / acc

    def quantile_upper(self, tail: Decimal) -> Decimal:
        """``z`` with ``1 - Phi(z) = tail`` (``0 < tail < 1/2``), by bisection to 1e-45."""
        lo, hi = Decimal(0), Decimal(10)
        while hi - lo > Decimal("1e-45"):
            mid = (lo + hi) / 2
            if 1 - self.cdf(mid) > tail:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def sigmas() -> list[Decimal]:
    """``sigma_g = exp(ln 0.11 + g / 255 * ln(256 / 0.11))``; the two end points are exact."""
    n = exact.NUM_LEVELS
    a, b = _SIGMA_MIN.ln(), _SIGMA_MAX.ln()
    out = [(a + (b - a) * g / (n - 1)).exp() for g in range(n)]
    out[0], out[-1] = _SIGMA_MIN, _SIGMA_MAX
    return out


def phi_table(normal: _Normal) -> np.ndarray:
    """``round(2**PHI_BITS Phi(i / 2**PHI_FRAC_BITS))``, ``|i| <= 8 * 2**PHI_FRAC_BITS``.

    Computed for ``i >= 0``; ``PHI[-i] = 2**PHI_BITS - PHI[i]`` exactly, since ``Phi(-x) = 1 - Phi(x)``
    and no value is a tie (checked).
    """
    one = 1 << exact.PHI_BITS
    half = exact.PHI_RANGE << exact.PHI_FRAC_BITS
    step = Decimal(1) / (1 << exact.PHI_FRAC_BITS)  # exact in decimal
    pos = [_to_int(one * normal.cdf(i * step), decimal.ROUND_HALF_EVEN) for i in range(half + 1)]
    table = np.array([one - p for p in pos[:0:-1]] + pos, dtype=np.int64)
    assert table.size == 2 * half + 1 and table[0] == 0 and table[-1] == one
    return table


def compute_tables() -> dict[str, np.ndarray]:
    """All stored arrays (int64), computed in 60-digit decimal arithmetic."""
    with decimal.localcontext(_context()):
        normal = _Normal()
        sig = sigmas()
        q32 = Decimal(1 << 32)
        mids = [(sig[g] * sig[g + 1]).sqrt() for g in range(len(sig) - 1)]
        z = normal.quantile_upper(_TAIL_MASS / 2)
        inv_one = Decimal(1 << exact.INV_BITS)
        tables = {
            "sigma_q32": [_to_int(s * q32, decimal.ROUND_HALF_EVEN) for s in sig],
            "mid_q32": [_to_int(m * q32, decimal.ROUND_FLOOR) for m in mids],
            "inv": [_to_int(inv_one / (exact.MEAN_RES * s), decimal.ROUND_HALF_EVEN) for s in sig],
            "support_radius": [_to_int(_SUPPORT_STDS * s, decimal.ROUND_CEILING) for s in sig],
            "table_radius": [_to_int(z * s, decimal.ROUND_CEILING) for s in sig],
            "exp_table": [
                max(
                    1,
                    _to_int(
                        (1 << exact.EXP_BITS) * (Decimal(-j) / exact.LOGIT_RES).exp(), decimal.ROUND_HALF_EVEN
                    ),
                )
                for j in range(exact.LOGIT_MAX_DIFF + 1)
            ],
        }
        out = {k: np.array(v, dtype=np.int64) for k, v in tables.items()}
        out["phi"] = phi_table(normal)
        out["meta"] = np.array(exact.table_meta(), dtype=np.int64)
    return out


def self_check() -> None:
    """Cross-checks of the decimal building blocks (pi, and the CDF series against the continued fraction)."""
    with decimal.localcontext(_context()):
        assert str(_pi()).startswith(_PI_DIGITS), _pi()
        normal = _Normal()
        for x in ("3", "5.5", "8"):
            x = Decimal(x)
            series = 1 - normal.cdf(x)
            cf = normal.upper_tail_cf(x)
            # 1 - Phi(x) loses the digits of Phi's leading 1: compare absolutely, at 1e-50.
            assert abs(series - cf) < Decimal("1e-50"), (x, series, cf)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=str(exact.TABLES_PATH))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    self_check()
    arrays = compute_tables()
    np.savez_compressed(args.out, **arrays)
    sizes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(
        f"wrote {args.out} ({pathlib.Path(args.out).stat().st_size} bytes; {sizes}) in {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
