import numpy as np
import pytest

from jaxlic.coding.tables import IndexedTables, pmf_to_quantized_cdf


@pytest.mark.parametrize("precision", [8, 16])
def test_quantized_cdf_has_no_zero_frequency_and_ends_at_total(precision):
    rng = np.random.default_rng(0)
    pmf = rng.random((50, 40)) ** 8
    pmf[0] = 0.0  # all zeros -> uniform
    pmf[1] = 1e-300  # tiny but positive
    pmf[2, :] = 0.0
    pmf[2, 3] = 1.0  # a delta
    pmf[3, :20] = 1e-30  # mass concentrated on a few symbols
    cdf = pmf_to_quantized_cdf(pmf, precision)
    assert cdf.shape == (50, 41) and cdf.dtype == np.int32
    assert np.all(cdf[:, 0] == 0) and np.all(cdf[:, -1] == 2**precision)
    assert np.all(np.diff(cdf, axis=-1) >= 1)


def test_quantized_cdf_is_close_to_the_pmf():
    pmf = np.exp(-0.5 * (np.arange(-30, 31) / 7.0) ** 2)
    pmf /= pmf.sum()
    freq = np.diff(pmf_to_quantized_cdf(pmf, 16)) / 2**16
    # each count is within one unit of pmf * (2**16 - L), plus the guaranteed unit
    assert np.all(np.abs(freq - pmf) <= (2 + pmf * pmf.size) / 2**16)


def test_quantized_cdf_rejects_alphabets_larger_than_total():
    with pytest.raises(ValueError):
        pmf_to_quantized_cdf(np.ones(300), precision=8)


def test_indexed_tables_pad_and_log2_prob():
    t = IndexedTables.from_pmfs(
        [np.array([0.5, 0.5]), np.array([0.2, 0.3, 0.5])],
        np.array([0.0, 0.0]),
        np.array([0, -1]),
        precision=16,
    )
    assert t.cdfs.shape == (2, 5)
    np.testing.assert_array_equal(t.cdf_lengths, [4, 5])
    np.testing.assert_array_equal(t.num_regular, [2, 3])
    assert t.cdfs[0, -1] == 2**16
    lp = t.log2_prob(np.array([1, 1, 5]), np.array([0, 1, 1]))
    np.testing.assert_allclose(lp[:2], np.log2([0.5, 0.5]), atol=1e-3)
    assert lp[2] < -15  # escape symbol of table 1 has (nearly) the minimum frequency
    np.testing.assert_allclose(t.pmf(1).sum(), 1.0)
