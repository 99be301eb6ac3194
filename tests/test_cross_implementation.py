"""Exact streams decode to the encoder's symbols under another convolution implementation.

Another CPU, jaxlib or a GPU runs other convolution kernels; this machine reproduces that with
XLA:CPU configurations (`eval.portability.CONFIGS`), each a fresh Python process with its own
``XLA_FLAGS``: ``default``; ``ynn-off`` (YNNPACK and XNNPACK off: XLA's own convolutions, the
configuration that broke 12 of 12 Kodak decodes of the float default model); and
``fastmath-sse42`` (fast math, SSE4.2 only). (The benchmark's fourth, ``ynn-off-sse41``,
moves only float convolutions and dots, as ``ynn-off`` already does, and would double the
decodes.) Under each, one process encodes every case and records the integer symbols it coded;
under each, one process then decodes every stream written
under the other two (`eval.portability.run_matrix`). Every such decode must succeed, pass the
stream's symbol check, and give the encoder's integer symbols (z's symbols and ``round(y_hat *
64)``). Symbols are compared, not pixels: the decoders run `Codec.decompress` without the
synthesis (float: a pixel may move by one; it reads nothing of the stream), which
tests/test_golden_streams.py checks by PSNR.

The cases:

* every entropy family of the exact path, on tiny random models (N = M = 16) with drawn latents
  (random analysis transforms give latents that all round to zero): mean-scale (``ckbd``),
  mixture (``ckbd-gmm``) and scale-only without context (``ckbd``, context "none", entropy
  "scale"); each model's fractional bits are calibrated on other drawn latents;
* both shipped exact models on four full Kodak photos, decoded as the CLI does
  (`jaxlic.zoo.for_stream`): ckbd-full-vr at q = 1.5 and q = 6, and ckbd-full q2.

(The test this replaces, test_cross_config.py, decoded under ``--xla_cpu_max_isa``, fast math
and one thread: these leave YNNPACK's run-time-dispatched kernels unchanged, so it never
reproduced another machine. One thread adds nothing that the configurations here lack.)
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from eval import portability

# One xdist worker runs the module: the encoder and decoder processes run once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cross_implementation")]

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
IMAGES = ("kodim01", "kodim04", "kodim13", "kodim23")
CONFIGS = ("default", "ynn-off", "fastmath-sse42")
N = 16  # N = M of the tiny models
Y_SHAPE, Z_SHAPE = (1, 8, 8, N), (1, 2, 2, N)  # a 128 x 128 image
FAMILIES = {  # family -> (registered model, overrides)
    "mean-scale": ("ckbd", {}),
    "mixture": ("ckbd-gmm", {}),
    "scale": ("ckbd", dict(context="none", entropy="scale")),
}


def _tiny_exact_model(family: str, path: pathlib.Path, seed: int, random_params) -> None:
    """Writes a tiny random model of `family` converted to the exact path: its fractional bits
    calibrated (`jaxlic.latent.exact.calibrate`) on drawn latents other than the coded ones."""
    import jax.numpy as jnp

    from jaxlic import weights
    from jaxlic.entropy import factorized
    from jaxlic.latent import exact
    from jaxlic.models import registry

    name, over = FAMILIES[family]
    float_model = registry.get_model(name, 3, N=N, M=N, **over)
    params = random_params(float_model, seed)
    y, z = portability.drawn_latents(seed + 100, Y_SHAPE, Z_SHAPE)
    med = np.asarray(factorized.medians(params["entropy_bottleneck"]))
    z_hat = jnp.asarray(np.round(z - med) + med)
    spec = float_model.apply({"params": params}, jnp.asarray(y), z_hat, method=exact.calibrate)
    cfg = float_model.cfg.replace(exact=spec)
    weights.save(path, params, {"model": cfg.name, "config": cfg.to_dict(), "quality": 3})


def _jobs(folder: pathlib.Path, random_params) -> list[dict]:
    jobs = []
    for seed, family in enumerate(FAMILIES):
        path = folder / f"tiny-{family}.msgpack"
        _tiny_exact_model(family, path, seed, random_params)
        latents = {"seed": seed, "y_shape": Y_SHAPE, "z_shape": Z_SHAPE}
        jobs.append(
            portability.job(
                f"tiny-{family}",
                family,
                model=FAMILIES[family][0],
                quality=3,
                weights=path,
                latents=latents,
                decoder="weights",
                pixels=False,
            )
        )
    for image in IMAGES:  # decoded as the CLI does: with the shipped weights the stream names
        path = KODAK / f"{image}.png"
        shipped = [("ckbd-full-vr", 0, 1.5), ("ckbd-full-vr", 0, 6.0), ("ckbd-full", 2, None)]
        for name, quality, q in shipped:
            tail = image if q is None else f"{image}/q{q:g}"
            jobs.append(
                portability.job(
                    f"{name}-q{quality}/{tail}",
                    name,
                    model=name,
                    quality=quality,
                    image=path,
                    rate=q,
                    pixels=False,
                )
            )
    return jobs


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, random_params):
    if not all((KODAK / f"{i}.png").is_file() for i in IMAGES):
        pytest.skip(f"Kodak images not found in {KODAK}")
    folder = tmp_path_factory.mktemp("cross_implementation")
    jobs = _jobs(folder, random_params)
    configs = portability.select(CONFIGS)
    result = portability.run_matrix(jobs, folder, configs, timeout=1500, log=lambda _: None)
    return jobs, result


def test_every_stream_is_written_under_every_configuration(matrix):
    jobs, result = matrix
    for config, records in result["encoded"].items():
        assert [r["id"] for r in records] == [j["id"] for j in jobs]
        errors = {r["id"]: r["traceback"] for r in records if "error" in r}
        assert not errors, f"encoding under {config} failed: {errors}"
    # Drawn latents give the same symbols under every configuration: the exact path's encoder
    # is portable too. (Not so for photos: the analysis transform is float, and may round a
    # latent the other way elsewhere; any stream must still decode to its own symbols.)
    for j in jobs:
        if j["latents"]:
            digests = {
                c: r["digest"] for c, recs in result["encoded"].items() for r in recs if r["id"] == j["id"]
            }
            assert len(set(digests.values())) == 1, (j["id"], digests)


def test_cross_decodes_give_the_encoders_symbols(matrix):
    jobs, result = matrix
    rows = portability.outcomes(result)
    n = len(CONFIGS)
    assert len(rows) == len(jobs) * n * (n - 1)
    bad = [r for r in rows if r["outcome"] != "decoded OK" or r["check"] != "passed"]
    lines = [
        f"{r['id']} written under {r['written']}, read under {r['read']}: {r['outcome']}"
        + (f" ({r['error']})" if r.get("error") else "")
        + (
            f", {r['symbols_differ']} of {r['symbols_total']} symbols differ"
            if r.get("symbols_differ")
            else ""
        )
        for r in bad
    ]
    assert not bad, f"{len(bad)} of {len(rows)} cross decodes failed:\n" + "\n".join(lines)


def test_cases_are_not_trivial(matrix):
    """The drawn latents need escapes, and the rate grows with the rate parameter."""
    _, result = matrix
    sizes = {r["id"]: r["bytes"] for r in result["encoded"]["default"]}
    for family in FAMILIES:
        assert sizes[f"tiny-{family}"] > 1000, sizes  # 1024 y symbols, some with escapes
    for image in IMAGES:
        low, high = sizes[f"ckbd-full-vr-q0/{image}/q1.5"], sizes[f"ckbd-full-vr-q0/{image}/q6"]
        assert 2000 < low < high / 3, sizes
