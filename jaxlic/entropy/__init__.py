"""Entropy models: training-time likelihoods (jax) and host-side coding (numpy + constriction)."""

from jaxlic.coding.tables import IndexedTables, pmf_to_quantized_cdf
from jaxlic.entropy.factorized import EntropyBottleneck
from jaxlic.entropy.gaussian import (
    SCALE_TABLE,
    decode_gaussian,
    encode_gaussian,
    gaussian_likelihood,
    scale_indexes,
)
from jaxlic.entropy.mixture import decode_mixture, encode_mixture, mixture_likelihood, quantize_params
from jaxlic.entropy.quantize import lower_bound, quantize

__all__ = [
    "quantize",
    "lower_bound",
    "IndexedTables",
    "pmf_to_quantized_cdf",
    "EntropyBottleneck",
    "SCALE_TABLE",
    "gaussian_likelihood",
    "scale_indexes",
    "encode_gaussian",
    "decode_gaussian",
    "mixture_likelihood",
    "quantize_params",
    "encode_mixture",
    "decode_mixture",
]
