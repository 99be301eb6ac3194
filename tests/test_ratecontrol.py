"""Rate control (`jaxlic.ratecontrol`) against monotone stand-ins for a variable-rate encoder."""

import math

import pytest

from jaxlic.errors import JaxlicError
from jaxlic.ratecontrol import search_quality, search_rate


def _encoder(base=1000.0, growth=1.8, steps=None):
    """Stream size base * growth**q (optionally in plateaus), and a log of the calls."""
    calls = []

    def compress_at(q):
        calls.append(q)
        x = math.floor(q * steps) / steps if steps else q
        return b"x" * int(base * growth**x)

    return compress_at, calls


@pytest.mark.parametrize("target", [1100, 2000, 5000, 9000])
def test_meets_the_tolerance_inside_the_range(target):
    compress_at, calls = _encoder()
    r = search_rate(compress_at, target, 0.0, 4.0)
    assert r.within_tolerance and abs(len(r.data) - target) <= 0.03 * target
    assert 0.0 <= r.rate <= 4.0 and len(calls) <= 16 and r.note == ""


def test_targets_out_of_reach_give_the_nearest_end_and_say_why():
    compress_at, _ = _encoder()
    low = search_rate(compress_at, 500, 0.0, 4.0)
    assert not low.within_tolerance and low.rate == 0.0 and "smallest stream" in low.note
    high = search_rate(compress_at, 10**6, 0.0, 4.0)
    assert not high.within_tolerance and high.rate == 4.0 and "largest stream" in high.note


def test_a_plateau_returns_the_largest_stream_below_the_target():
    compress_at, _ = _encoder(steps=1)  # sizes jump by 1.8x: 3% is unreachable in between
    r = search_rate(compress_at, 2600, 0.0, 4.0)
    assert not r.within_tolerance and len(r.data) <= 2600 and "nearest below" in r.note


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf")])
def test_bad_targets_are_errors(bad):
    compress_at, calls = _encoder()
    with pytest.raises(JaxlicError, match="positive number of bytes"):
        search_rate(compress_at, bad, 0.0, 4.0)
    assert calls == []


def test_the_old_names_still_work():
    compress_at, _ = _encoder()
    r = search_quality(compress_at, 2000, 0.0, 4.0)
    assert search_quality is search_rate and r.quality == r.rate
