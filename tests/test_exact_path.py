"""The exact entropy-parameter path (`jaxlic.latent.exact`) against an independent int64 reference.

`tests/exact_reference.py` re-derives the integer networks, the indices and the streams in numpy
int64 from the documented rules. These tests check what a float entropy path does not guarantee:

* the indices (through `jax.jit` and the host coder's jitted parameter functions), the CDFs and
  the y sections equal the reference's bit for bit: drawn latents with random weights for the
  three families, and a Kodak crop with the shipped default (exact as shipped, or converted by
  calibration while the shipped weights are float);
* after the integer inputs, the traced computations hold no float value that depends on the data;
* the indices do not move under perturbations of the latents within their bins, of the
  synthesis weights, or of the entropy-path weights below their integer grid (where the float
  path's outputs do move);
* no int32 value wraps around: the export bounds of the converted default, and extreme inputs
  through the int32 path equal the int64 reference (which checks every int32 value's range).
"""

import pathlib

import exact_reference as R
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jcore
from PIL import Image

from jaxlic import models, zoo
from jaxlic import weights as weights_io
from jaxlic.coding import container
from jaxlic.entropy import exact as exact_entropy
from jaxlic.entropy import factorized
from jaxlic.latent import exact
from jaxlic.latent.exact import IntegerView
from jaxlic.layers.context import MASKS
from jaxlic.models.codec import Codec, to_input
from jaxlic.models.compressor import Compressor
from jaxlic.models.config import ModelConfig

PRETRAINED = pathlib.Path(zoo.__file__).parent / "pretrained"
KODAK = pathlib.Path("/work/shared/data/kodak")
FAMILIES = {  # family -> (registered name, overrides)
    "scale": ("ckbd", dict(context="none", entropy="scale")),
    "gaussian": ("ckbd", {}),
    "gmm": ("ckbd-gmm", {}),
}
NW = 8  # N = M of the tiny models
Y_SHAPE, Z_SHAPE = (1, 8, 8, NW), (1, 2, 2, NW)
INDEX_KEYS = ("level", "mean64", "weight256")


def _timings():
    return {"network_s": 0.0, "coding_s": 0.0}


# ------------------------------------------------------------------------------------ models


def _drawn_latents(seed: int):
    """Latents with varied per-channel spreads and a few large values (escapes, clipping)."""
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.normal(0, 1, Y_SHAPE[-1]))
    y = (rng.normal(size=Y_SHAPE) * 4 * spread).astype(np.float32)
    z = (rng.normal(size=Z_SHAPE) * 3).astype(np.float32)
    y[0, 0, 0, 0], y[0, 1, 1, 1], y[0, 0, 1, 2], y[0, 3, 4, 3] = 300.0, -3000.0, 2500.0, 1e6
    z[0, 0, 0, 0], z[0, 1, 1, 1] = -200.0, 5000.0
    return y, z


def _all_passes(net, z_sym, y_hat):
    """IntegerView's indices of every pass, as the schedule derives them (pass 1 from `y_hat`)."""
    view = IntegerView(net)
    hyper = view.hyper(z_sym)
    if not net.latent.uses_context:
        return [view.entropy_params(hyper)]
    return [net.latent.schedule.pass_params(view, k, hyper, y_hat) for k in range(2)]


class Exact:
    """An exact model with its variables, codec, reference and jitted integer path."""

    def __init__(self, model, variables, quality=0, meta=None, rate_args=()):
        self.model, self.variables = model, variables
        self.codec = Codec(model, variables, quality=quality, meta=meta)
        self.ref = R.Reference(model, variables)
        self.rate_args = rate_args
        self.medians = factorized.medians(variables["params"]["entropy_bottleneck"])
        self.jit_passes = jax.jit(lambda v, z_sym, y_hat: model.apply(v, z_sym, y_hat, method=_all_passes))

    def z_sym(self, z):
        return np.round(z - self.medians).astype(np.int32)

    def host_passes(self, z_sym, y_hat, variables=None):
        """Indices from the host coder's own jitted functions; pass 1 sees the anchors only."""
        coder, v = self.codec._coder, variables or self.variables
        hyper = coder.hyper_fn(v, jnp.asarray(z_sym), *self.rate_args)
        if not self.model.latent.uses_context:
            return [_np(coder.param_fns[0](v, hyper))]
        y_anchor = np.where(R.anchors(*y_hat.shape[1:3])[None, :, :, None], y_hat, np.float32(0))
        return [_np(coder.param_fns[k](v, hyper, y_anchor)) for k in range(2)]

    def code(self, y, z):
        """(sections, crc) of the host coder, and its decoded (y_hat, crc)."""
        coder = self.codec._coder
        sections, crc = coder.encode(y, z, _timings(), self.rate_args)
        y_hat, crc_dec = coder.decode(sections, y.shape, z.shape, _timings(), self.rate_args)
        return sections, crc, y_hat, crc_dec


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _exact_from_float(float_model, variables, y, z, **kw) -> Exact:
    """Calibrates a float model's fractional bits on (y, z) and builds its exact twin."""
    med = factorized.medians(variables["params"]["entropy_bottleneck"])
    z_hat = jnp.asarray(np.round(z - med) + med)
    spec = float_model.apply(variables, jnp.asarray(y), z_hat, method=exact.calibrate)
    return Exact(Compressor(float_model.cfg.replace(exact=spec)), variables, **kw)


@pytest.fixture(scope="module")
def tiny(random_params):
    """family -> (Exact of a tiny random model, drawn y, z); built on first use."""
    cache = {}

    def get(family):
        if family not in cache:
            name, over = FAMILIES[family]
            float_model = models.get_model(name, N=NW, M=NW, **over)
            params = random_params(float_model, seed=len(family))
            variables = {"params": jax.tree_util.tree_map(jnp.asarray, params)}
            rng = np.random.default_rng(1)
            y_cal = (rng.normal(size=Y_SHAPE) * 4).astype(np.float32)
            z_cal = (rng.normal(size=Z_SHAPE) * 3).astype(np.float32)
            m = _exact_from_float(float_model, variables, y_cal, z_cal, quality=3)
            cache[family] = (m, *_drawn_latents(seed=len(family)))
        return cache[family]

    return get


@pytest.fixture(scope="module")
def shipped():
    """The shipped default (variable rate, mixture) on a Kodak crop: as shipped when its weights
    are exact, else converted by calibration on that crop; and its float twin (same params)."""
    params, meta = weights_io.load(PRETRAINED / "ckbd-full-vr-q0.msgpack")
    cfg = ModelConfig(**meta["config"])
    variables = {"params": jax.tree_util.tree_map(jnp.asarray, params)}
    fc = Codec(Compressor(cfg.replace(exact=())), variables, quality=0, meta=meta)
    img = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[128:384, 256:512]
    rate = (jnp.asarray(4.0, jnp.float32),)
    y, z = _np(fc._analysis(fc.variables, to_input(img), *rate))
    if cfg.exact:
        m = Exact(Compressor(cfg), variables, quality=0, meta=meta, rate_args=rate)
    else:
        m = _exact_from_float(fc.model, variables, y, z, quality=0, meta=meta, rate_args=rate)
    return {"float": fc, "exact": m, "img": img, "y": y, "z": z}


def _assert_same_indices(got: list[dict], want: list[dict], what: str):
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        assert sorted(g) == sorted(w), (what, k)
        for key in w:
            g_key = np.asarray(g[key])
            assert np.issubdtype(g_key.dtype, np.integer), (what, k, key, g_key.dtype)
            np.testing.assert_array_equal(g_key, w[key], err_msg=f"{what}: pass {k}, {key}")


def _cdf_rows(p: dict, K: int):
    """What the range coder sees for indices `p`: per element its CDF (and support start)."""
    if "weight256" in p:
        start, rows = exact_entropy.mixture_cdf_rows(
            *(np.asarray(p[k]).reshape(-1, K) for k in INDEX_KEYS[::-1])
        )
        return start, np.concatenate(rows)
    t = exact_entropy.gaussian_tables()
    return t.offsets[np.asarray(p["level"])], t.cdfs[np.asarray(p["level"])]


def _check_against_reference(m: Exact, y, z, *, min_levels: int):
    """Host coding of (y, z) equals the reference bit for bit: sections, decoded latents, the
    indices of the host coder, of IntegerView under jax.jit, and the CDF rows."""
    sections, crc, y_hat, crc_dec = m.code(y, z)
    assert crc_dec == crc
    z_sym = m.z_sym(z)
    ref_sections, ref_y_hat = m.ref.encode(y, z_sym)
    assert sections[1:] == ref_sections  # the y sections (z has its own tables)
    assert ref_y_hat.tobytes() == y_hat.tobytes()

    want = m.ref.passes(z_sym, y_hat)
    host = m.host_passes(z_sym, y_hat)
    _assert_same_indices(host, want, "host coder")
    # pass 1 of the full decoded latents: the context never sees the non-anchors
    _assert_same_indices(_np(m.jit_passes(m.variables, z_sym, y_hat)), want, "IntegerView under jax.jit")
    for got, p in zip(host, want):
        for a, b in zip(_cdf_rows(got, m.ref.K), _cdf_rows(p, m.ref.K)):
            np.testing.assert_array_equal(a, b)
    # not vacuous: the indices vary
    levels = np.concatenate([p["level"].ravel() for p in want])
    assert len(np.unique(levels)) >= min_levels, np.unique(levels)
    for key in ("mean64", "weight256"):
        if key in want[-1]:
            assert len(np.unique(want[-1][key])) >= 5, key
    return sections, crc, y_hat


# ------------------------------------------------------------------------ reference vs jax


@pytest.mark.parametrize("family", list(FAMILIES))
def test_indices_and_streams_equal_the_int64_reference_on_drawn_latents(family, tiny):
    m, y, z = tiny(family)
    _check_against_reference(m, y, z, min_levels=10)


@pytest.mark.slow
def test_indices_and_streams_equal_the_int64_reference_on_a_kodak_image(shipped):
    m = shipped["exact"]
    _check_against_reference(m, shipped["y"], shipped["z"], min_levels=20)


# ------------------------------------------------------------------------------- jaxprs

#: Float operations that are exact and the same on every IEEE machine (the rounding of the
#: decoded latents for the context network: round, clip, conversion to int32).
EXACT_FLOAT_OPS = {"round", "clamp", "max", "min", "convert_element_type", "copy", "copy_p"}
CALLS = {"pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "remat"}


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for v in value if isinstance(value, tuple | list) else (value,):
            if isinstance(v, jcore.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jcore.Jaxpr):
                yield v


def _float_ops_on_data(jaxpr, tainted_in, found):
    """Taint pass: appends to `found` every equation with a float output that depends on a
    tainted (data) input, except `EXACT_FLOAT_OPS`; recurses into calls (positionally) and other
    sub-computations (conservatively: all their inputs tainted)."""
    tainted = {v for v, t in zip(jaxpr.invars, tainted_in) if t}
    for eqn in jaxpr.eqns:
        ins = [not isinstance(v, jcore.Literal) and v in tainted for v in eqn.invars]
        if not any(ins):
            continue
        subs = list(_sub_jaxprs(eqn))
        for sub in subs:
            exact_map = eqn.primitive.name in CALLS and len(sub.invars) == len(ins)
            _float_ops_on_data(sub, ins if exact_map else [True] * len(sub.invars), found)
        tainted.update(eqn.outvars)
        if subs:
            continue
        for out in eqn.outvars:
            if jnp.issubdtype(out.aval.dtype, jnp.floating) and eqn.primitive.name not in EXACT_FLOAT_OPS:
                found.append(eqn.primitive.name)
    found.extend(f"tainted output {i}" for i, v in enumerate(jaxpr.outvars) if v in tainted)
    return found


def _data_float_ops(fn, params, *data):
    """(float ops on data, outputs that depend on the data, output dtypes) of `fn(params, *data)`'s
    jaxpr."""
    closed = jax.make_jaxpr(fn)(params, *data)
    n_params = len(jax.tree_util.tree_leaves(params))
    n_data = len(jax.tree_util.tree_leaves(data))
    assert len(closed.jaxpr.invars) == n_params + n_data
    found = _float_ops_on_data(closed.jaxpr, [False] * n_params + [True] * n_data, [])
    outputs = [f for f in found if f.startswith("tainted output")]
    return [f for f in found if f not in outputs], outputs, [a.dtype for a in closed.out_avals]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_integer_path_holds_no_float_value_that_depends_on_the_data(family, tiny):
    m, y, z = tiny(family)
    v, model = m.variables, m.model
    z_sym = jnp.asarray(m.z_sym(z))
    y_hat = jnp.asarray(np.round(y))
    shapes = jax.eval_shape(lambda v, zs: model.apply(v, zs, method="hyper_synthesis_exact"), v, z_sym)
    hyper = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    fns = {
        "h_s": (lambda v, zs: model.apply(v, zs, method="hyper_synthesis_exact"), (z_sym,)),
        "all passes": (lambda v, zs, yh: model.apply(v, zs, yh, method=_all_passes), (z_sym, y_hat)),
    }
    if model.latent.uses_context:
        fns["context"] = (
            lambda v, yh: model.apply(v, yh, method=lambda n, a: IntegerView(n).context(a)),
            (y_hat,),
        )
        for k in range(2):
            fns[f"host pass {k}"] = (m.codec._coder.param_fns[k], (hyper, y_hat))
    else:
        fns["host params"] = (m.codec._coder.param_fns[0], (hyper,))
    for name, (fn, data) in fns.items():
        found, outputs, dtypes = _data_float_ops(fn, v, *data)
        assert not found, f"{family} {name}: float operations on the data: {sorted(set(found))}"
        assert outputs, f"{family} {name}: no output depends on the data (the taint pass is broken)"
        assert all(jnp.issubdtype(d, jnp.integer) for d in dtypes), (family, name, dtypes)
    # the check is not vacuous: the float path's hyper-synthesis fails it
    float_model = Compressor(model.cfg.replace(exact=()))
    z_hat = z_sym.astype(jnp.float32) + jnp.asarray(m.medians)
    found, _, _ = _data_float_ops(lambda v, zh: float_model.apply(v, zh, method="hyper_synthesis"), v, z_hat)
    assert "conv_general_dilated" in found


# ---------------------------------------------------------------------------- perturbations


def _within_bins(rng, x, x_hat):
    """x_hat + (x - x_hat)(1 +- 1e-3 random): the same bins (values with |x - x_hat| >= 0.49, near
    a bin edge, stay as they are)."""
    d = x - x_hat
    moved = x_hat + d * (1 + 1e-3 * rng.uniform(-1, 1, x.shape)).astype(np.float32)
    out = np.where(np.abs(d) < 0.49, moved, x).astype(np.float32)
    assert (out != x).mean() > 0.5
    return out


def _check_latent_perturbation(m: Exact, y, z, seed=0):
    rng = np.random.default_rng(seed)
    sections, crc, y_hat, _ = m.code(y, z)
    z_hat = (m.z_sym(z) + m.medians).astype(np.float32)
    y2, z2 = _within_bins(rng, y, y_hat), _within_bins(rng, z, z_hat)
    sections2, crc2, y_hat2, _ = m.code(y2, z2)
    assert sections2 == sections and crc2 == crc
    assert y_hat2.tobytes() == y_hat.tobytes()
    _assert_same_indices(m.host_passes(m.z_sym(z2), y_hat2), m.ref.passes(m.z_sym(z), y_hat), "perturbed")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_latents_moved_within_their_bins_give_the_same_indices_and_stream(family, tiny):
    m, y, z = tiny(family)
    _check_latent_perturbation(m, y, z)


@pytest.mark.slow
def test_decoder_indices_do_not_depend_on_the_synthesis_weights(shipped):
    """(b) A stream decodes with g_s, the post-processing and the inverse gains perturbed by
    +-1e-3 relative: the same latents (the symbol check passes), a slightly different image."""
    m, img = shipped["exact"], shipped["img"]
    _check_latent_perturbation(m, shipped["y"], shipped["z"])
    sections, crc, y_hat, _ = m.code(shipped["y"], shipped["z"])
    q = float(m.rate_args[0])
    extra = {
        container.WEIGHTS_KEY: m.codec.weights_id,
        container.SYMBOLS_KEY: crc,
        container.EXACT_KEY: 1,
        container.RATE_KEY: container.rate_to_extra(q),
    }
    h, w = img.shape[:2]
    data = container.pack(container.Header(m.codec.name, 0, h, w, extra), sections)

    rng = np.random.default_rng(3)
    synthesis = ("g_s", "post", "inv_gain")
    params = {
        k: jax.tree_util.tree_map(
            lambda a: a * (1 + 1e-3 * rng.uniform(-1, 1, a.shape)).astype(np.float32), v
        )
        if k.startswith(synthesis)
        else v
        for k, v in m.variables["params"].items()
    }
    assert any(k.startswith("post") for k in params) and any(k.startswith("g_s") for k in params)
    other = Codec(m.model, {"params": params}, quality=0, meta=m.codec.meta)
    assert other.weights_id != m.codec.weights_id
    other.weights_id = m.codec.weights_id  # only the synthesis differs: let the stream through
    y_other, crc_other = other._coder.decode(
        sections, y_hat.shape, shipped["z"].shape, _timings(), m.rate_args
    )
    assert crc_other == crc and y_other.tobytes() == y_hat.tobytes()
    out = other.decompress(data)  # the symbol check of the header passes
    psnr = 10 * np.log10(255**2 / np.mean((out.astype(np.float64) - img) ** 2))
    assert psnr > 25, psnr


def _conv_layers(ref: R.Reference):
    """(network, conv layer, input bits) of every conv of the exact networks."""
    bits_of = ref.network_bits()
    for name, prog in ref.progs.items():
        f, fracs = bits_of[name]
        for layer in prog.layers:
            if layer.kind == "conv":
                yield name, layer, f
            elif layer.kind in ("act", "out"):
                f = fracs.pop(0)


def _perturbed(params, ref: R.Reference, rng, *, ulps: bool, networks=("h_s",)):
    """Params with the kernels and biases of exact `networks` perturbed: by one ulp, kept only
    where the reference's integer weights, biases and exponents stay the same (below the weight
    grid), or by +-1e-3 relative. Returns (params, entries changed, integer weights changed)."""
    params = jax.tree_util.tree_map(np.array, _np(params))
    changed = moved = 0
    for name, layer, f in _conv_layers(ref):
        if name not in networks:
            continue
        p = params
        for key in layer.path:
            p = p[key]
        mask = MASKS[layer.mask](layer.kernel) if layer.mask else None
        before = R.quantize_conv(p["kernel"], p["bias"], f, mask)
        new = {}
        for key in ("kernel", "bias"):
            a = p[key]
            if ulps:
                new[key] = np.nextafter(
                    a, np.where(rng.random(a.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
                ).astype(np.float32)
            else:
                new[key] = (a * (1 + 1e-3 * rng.uniform(-1, 1, a.shape))).astype(np.float32)
        if ulps:
            for _ in range(3):  # keep the perturbation off every rounding boundary
                w, b, e = R.quantize_conv(new["kernel"], new["bias"], f, mask)
                same_ch = e == before[2]
                new["kernel"] = np.where((w == before[0]) & same_ch, new["kernel"], p["kernel"])
                new["bias"] = np.where((b == before[1]) & same_ch, new["bias"], p["bias"])
            after = R.quantize_conv(new["kernel"], new["bias"], f, mask)
            for x0, x1 in zip(before, after):
                np.testing.assert_array_equal(x0, x1)
        else:
            moved += int((R.quantize_conv(new["kernel"], new["bias"], f, mask)[0] != before[0]).sum())
        changed += sum(int((new[k] != p[k]).sum()) for k in new)
        p.update(new)
    return params, changed, moved


@pytest.mark.slow
def test_exact_indices_are_a_function_of_the_integer_weights_where_float_ones_are_not(shipped):
    """(c) The float path's parameters move with its weights; the exact path's indices are a
    function of the integer weights: unchanged below the weight grid, and equal to the
    reference (so the same on both sides of the coder) where integer weights move."""
    m, fc = shipped["exact"], shipped["float"]
    y, z = shipped["y"], shipped["z"]
    rng = np.random.default_rng(4)
    v = m.variables
    stream, crc, y_hat, _ = m.code(y, z)
    z_sym = m.z_sym(z)
    base = m.ref.passes(z_sym, y_hat)

    # float path: h_s's weights +-1e-3 relative move some coding parameter on its grids
    fcoder = fc._coder
    z_hat = jnp.asarray(z_sym + m.medians)
    y_anchor = np.where(R.anchors(*y.shape[1:3])[None, :, :, None], y_hat, np.float32(0))

    def float_params(variables):
        hyper = fcoder.hyper_fn(variables, z_hat, *m.rate_args)
        return hyper, [_np(fcoder.param_fns[k](variables, hyper, y_anchor)) for k in range(2)]

    hyper0, fp0 = float_params(v)
    big, _, moved = _perturbed(v["params"], m.ref, rng, ulps=False)
    _, fp1 = float_params({"params": big})
    assert any(not np.array_equal(a[k], b[k]) for a, b in zip(fp0, fp1) for k in a), "float path unmoved"

    # exact path, same perturbation: integer weights move, the indices stay the reference's
    assert moved > 0
    big_m = Exact(m.model, {"params": jax.tree_util.tree_map(jnp.asarray, big)}, rate_args=m.rate_args)
    sections, crc_big, y_hat_big, crc_dec = big_m.code(y, z)
    assert crc_dec == crc_big
    _assert_same_indices(big_m.host_passes(z_sym, y_hat_big), big_m.ref.passes(z_sym, y_hat_big), "1e-3")
    assert big_m.ref.encode(y, z_sym)[0] == sections[1:]

    # every exact network one ulp off, below the weight grid: identical exact indices and stream;
    # the float path's hyper-synthesis moves
    ulp, changed, _ = _perturbed(v["params"], m.ref, rng, ulps=True, networks=tuple(m.ref.progs))
    total = sum(a.size for _, layer, _ in _conv_layers(m.ref) for a in _kernel_bias(v, layer))
    assert changed > 0.9 * total, (changed, total)
    ulp_m = Exact(m.model, {"params": jax.tree_util.tree_map(jnp.asarray, ulp)}, rate_args=m.rate_args)
    _assert_same_indices(ulp_m.host_passes(z_sym, y_hat), base, "one ulp")
    assert ulp_m.code(y, z)[:2] == (stream, crc)
    hyper1, _ = float_params(ulp_m.variables)
    assert not np.array_equal(np.asarray(hyper0), np.asarray(hyper1)), "float hyper-synthesis unmoved"


def _kernel_bias(v, layer):
    p = v["params"]
    for key in layer.path:
        p = p[key]
    return p["kernel"], p["bias"]


# ------------------------------------------------------------------------------- overflow


@pytest.mark.slow
def test_overflow_bounds_of_the_converted_default_fit_int32(shipped):
    m = shipped["exact"]
    params = _np(m.variables["params"])
    spec = m.model.apply(m.variables, method="exact_spec")
    points = {"h_s": spec.hyper, "context_prediction": (spec.f_cat,), "entropy_parameters": spec.params}
    f_in = {"h_s": spec.f_z, "context_prediction": 0, "entropy_parameters": spec.f_cat}
    ours = R.worst_case_accumulators(m.model, m.variables)
    for name, prog in m.ref.progs.items():
        theirs = exact.overflow_bounds(prog, params, points[name], f_in[name], -exact.ACT_MIN)
        assert max(theirs) < 2**31, (name, theirs)
        assert len(theirs) == len(ours[name])
        assert all(t >= o for t, o in zip(theirs, ours[name])), (name, theirs, ours[name])


def _extreme_inputs(rng, y_shape=Y_SHAPE, z_shape=Z_SHAPE):
    """(name, z_sym, y_hat) of extreme and random inputs."""
    a = R.anchors(*y_shape[1:3])[None, :, :, None]
    signs = np.where(rng.random(y_shape) < 0.5, -1.0, 1.0).astype(np.float32)
    big = 2.0**10
    return [
        ("max", np.full(z_shape, 2**12, np.int32), np.full(y_shape, big, np.float32)),
        ("min", np.full(z_shape, -(2**12), np.int32), np.full(y_shape, -big, np.float32)),
        ("mixed", rng.choice([-(2**12), 2**12], z_shape).astype(np.int32), signs * big),
        (
            "checker",
            np.full(z_shape, 2**12, np.int32),
            (np.where(a, big, -big) + 0 * signs).astype(np.float32),
        ),
        (
            "random",
            rng.integers(-(2**12), 2**12 + 1, z_shape).astype(np.int32),
            rng.uniform(-big, big, y_shape).astype(np.float32),
        ),
        ("int32", rng.choice([-(2**31), 2**31 - 1], z_shape).astype(np.int32), signs * 1e30),
    ]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_extreme_inputs_match_the_int64_reference(family, tiny):
    m, _, _ = tiny(family)
    for name, z_sym, y_hat in _extreme_inputs(np.random.default_rng(5)):
        want = m.ref.passes(z_sym, y_hat)  # raises Int32Overflow if a value leaves int32
        _assert_same_indices(_np(m.jit_passes(m.variables, z_sym, y_hat)), want, f"{family} {name}")


@pytest.mark.slow
def test_extreme_inputs_match_the_int64_reference_on_the_default(shipped):
    m = shipped["exact"]
    cases = _extreme_inputs(np.random.default_rng(6), shipped["y"].shape, shipped["z"].shape)
    for name, z_sym, y_hat in cases:
        if name in ("max", "mixed", "random"):
            _assert_same_indices(m.host_passes(z_sym, y_hat), m.ref.passes(z_sym, y_hat), name)


@pytest.mark.parametrize("f_z", [16])
def test_h_s_input_saturates_without_int32_wraparound(f_z, tiny):
    """z_sym * 2^f_z leaves int32 for |z_sym| >= 2^(31 - f_z): the input must saturate, not wrap
    (f_z = 16 is the most calibration gives; with f_z >= 11 symbols of 2^20 used to wrap)."""
    m, _, _ = tiny("scale")
    spec = (f_z, *m.model.cfg.exact[1:])
    model = Compressor(m.model.cfg.replace(exact=spec))
    ref = R.Reference(model, m.variables)
    hyper = jax.jit(lambda v, zs: model.apply(v, zs, method="hyper_synthesis_exact"))
    rng = np.random.default_rng(f_z)
    edge = 2 ** (31 - f_z)
    z_sym = rng.choice([edge, -edge, edge - 1, 2**20, -(2**20), 2**31 - 1, -(2**31), 1, -1], Z_SHAPE)
    got = _np(hyper(m.variables, z_sym.astype(np.int32)))
    want = ref.hyper(z_sym)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.broadcast_to(g, w.shape), w)  # (accumulator, bits)
