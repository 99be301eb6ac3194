"""A decoder in a fresh Python process reproduces the symbols bit-exactly (no hidden state)."""

import subprocess
import sys

import numpy as np

from jaxlic.entropy import factorized, gaussian, mixture

_DECODER = r"""
import sys
import numpy as np
from jaxlic.entropy import factorized, gaussian, mixture

f = np.load(sys.argv[1])
params = {k[3:]: f[k] for k in f.files if k.startswith("eb_")}
out = {
    "gauss": gaussian.decode_gaussian(f["gauss_data"].tobytes(), f["gauss_scales"]),
    "mix": mixture.decode_mixture(f["mix_data"].tobytes(), f["mix_w"], f["mix_m"], f["mix_s"]),
    "fact": factorized.decode_symbols(f["fact_data"].tobytes(), f["fact_z"].shape, factorized.build_tables(params))
    .astype(np.float32) + factorized.medians(params),
}
np.savez(sys.argv[2], **out)
"""


def _eb_params(rng, c):
    """Random but valid EntropyBottleneck params (CompressAI shapes), no jax needed."""
    f = (1, 3, 3, 3, 3, 1)
    p = {}
    for i in range(5):
        p[f"matrix{i}"] = rng.normal(size=(c, f[i + 1], f[i])).astype(np.float32)
        p[f"bias{i}"] = rng.normal(size=(c, f[i + 1], 1)).astype(np.float32)
        if i < 4:
            p[f"factor{i}"] = rng.normal(size=(c, f[i + 1], 1)).astype(np.float32)
    med = rng.normal(size=c)
    p["quantiles"] = np.stack([med - 8, med, med + 8], -1)[:, None, :].astype(np.float32)
    return p


def test_decoding_in_a_fresh_process_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    scales = np.exp(rng.normal(0, 1.5, (3, 8, 8, 16))).astype(np.float32)
    g_sym = np.rint(rng.normal(size=scales.shape) * scales).astype(np.int32)
    g_sym.flat[0] = 10**7
    w, m, s = mixture.quantize_params(
        rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3)) * 3, np.exp(rng.normal(0, 1.2, (3000, 3)))
    )
    m_sym = np.rint(m[:, 0] + rng.normal(size=3000) * s[:, 0]).astype(np.int32)
    m_sym[0] = -(10**7)
    eb = _eb_params(rng, 6)
    z = (rng.normal(size=(2, 4, 5, 6)) * 5).astype(np.float32)
    z.flat[0] = 1e4
    files = {
        "gauss_data": np.frombuffer(gaussian.encode_gaussian(g_sym, scales), np.uint8),
        "gauss_scales": scales,
        "mix_data": np.frombuffer(mixture.encode_mixture(m_sym, w, m, s), np.uint8),
        "mix_w": w,
        "mix_m": m,
        "mix_s": s,
        "fact_data": np.frombuffer(
            factorized.encode_symbols(factorized.symbols(z, eb), factorized.build_tables(eb)), np.uint8
        ),
        "fact_z": z,
        **{f"eb_{k}": v for k, v in eb.items()},
    }
    np.savez(tmp_path / "in.npz", **files)
    subprocess.run(
        [sys.executable, "-c", _DECODER, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        check=True,
        timeout=120,
    )
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["gauss"], g_sym)
    np.testing.assert_array_equal(out["mix"], m_sym)
    med = factorized.medians(eb)
    np.testing.assert_array_equal(out["fact"], np.rint(z - med) + med)
