"""jaxlic.convert: reading CompressAI checkpoints and mapping their keys, with clear errors."""

import io
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from jaxlic import convert, weights
from jaxlic.errors import JaxlicError, ModelError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "compressai"
PTH = FIXTURES / "bmshj2018-hyperprior.pth.tar"
NPZ = FIXTURES / "bmshj2018-hyperprior.npz"
NAME = "bmshj2018-hyperprior"


@pytest.fixture(scope="module")
def state_dict():
    return convert.load_checkpoint(NPZ)


@pytest.fixture(scope="module")
def params(state_dict):
    return convert.convert_state_dict(state_dict, NAME)


def flat(tree, prefix=()):
    out = {}
    for k, v in tree.items():
        out.update(flat(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def test_builtin_reader_reads_real_pth_tar_without_torch(state_dict):
    ckpt = convert.read_torch_checkpoint(str(PTH))
    sd = ckpt["state_dict"]
    # the .pth.tar is complete; the .npz fixture dropped the Gaussian CDF tables only
    assert set(sd) - set(state_dict) == {
        f"gaussian_conditional.{b}" for b in ("_quantized_cdf", "_offset", "_cdf_length")
    }
    for k, v in state_dict.items():
        assert sd[k].dtype == v.dtype and np.array_equal(sd[k], v), k


def test_real_pth_tar_converts_like_the_npz(params):
    from_pth = convert.convert_state_dict(convert.load_checkpoint(PTH), NAME)
    a, b = flat(from_pth), flat(params)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_conversion_fills_every_parameter_with_the_right_layout(state_dict, params):
    p = params
    np.testing.assert_array_equal(p["g_a_0"]["kernel"], state_dict["g_a.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(p["g_a_1"]["gamma"], state_dict["g_a.1.gamma"].T)
    np.testing.assert_array_equal(p["g_s_0"]["bias"], state_dict["g_s.0.bias"])
    assert p["g_s_0"]["conv"]["kernel"].shape == (3, 3, 16, 4 * 12)
    np.testing.assert_array_equal(
        p["entropy_bottleneck"]["matrix4"], state_dict["entropy_bottleneck.matrices.4"]
    )
    assert all(v.dtype == np.float32 for v in flat(p).values())


def test_missing_key_is_named_in_the_error(state_dict):
    sd = {k: v for k, v in state_dict.items() if k != "h_s.2.weight"}
    with pytest.raises(ModelError, match=r"1 parameter\(s\) missing.*h_s_2/conv/kernel"):
        convert.convert_state_dict(sd, NAME)


def test_extra_key_is_named_in_the_error(state_dict):
    sd = dict(state_dict, **{"g_a.9.weight": np.zeros((3, 3, 5, 5), np.float32)})
    with pytest.raises(ModelError, match=r"1 unknown key\(s\): g_a\.9\.weight"):
        convert.convert_state_dict(sd, NAME)


def test_shape_mismatch_is_named_in_the_error(state_dict):
    sd = dict(state_dict, **{"h_a.0.bias": np.zeros(5, np.float32)})
    with pytest.raises(ModelError, match=r"h_a\.0\.bias: shape \(5,\)"):
        convert.convert_state_dict(sd, NAME)


def test_constants_that_differ_from_jaxlic_are_refused(state_dict):
    sd = dict(
        state_dict, **{"gaussian_conditional.scale_table": state_dict["gaussian_conditional.scale_table"] * 2}
    )
    with pytest.raises(ModelError, match="scale_table"):
        convert.convert_state_dict(sd, NAME)


def test_cdf_buffers_are_optional(state_dict, params):
    sd = {k: v for k, v in state_dict.items() if not k.endswith(("_quantized_cdf", "_offset", "_cdf_length"))}
    assert flat(convert.convert_state_dict(sd, NAME)).keys() == flat(params).keys()


def test_old_key_spellings_and_dataparallel_prefix(tmp_path, state_dict, params):
    renamed = {}
    for k, v in state_dict.items():
        k = k.replace("entropy_bottleneck.matrices.", "entropy_bottleneck._matrix")
        k = k.replace("entropy_bottleneck.biases.", "entropy_bottleneck._biases.")
        renamed["module." + k] = v
    path = tmp_path / "old.npz"
    np.savez(path, **renamed)
    got = convert.convert_state_dict(convert.load_checkpoint(path), NAME)
    a, b = flat(got), flat(params)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_main_convert_writes_a_weights_file(tmp_path):
    out = tmp_path / "w.msgpack"
    assert convert.main_convert([str(PTH), str(out), "--model", NAME]) == 0
    params, meta = weights.load(out)
    assert meta["model"] == NAME and (meta["N"], meta["M"]) == (12, 16)
    assert meta["config"]["N"] == 12 and meta["source"]["library"] == "compressai"
    assert params["g_a_0"]["kernel"].shape == (5, 5, 3, 12)
    with pytest.raises(JaxlicError, match="--force"):
        convert.main_convert([str(PTH), str(out), "--model", NAME])
    ns = type("Args", (), {"argv": [str(PTH), "--model", NAME, str(out), "--force"]})()
    assert convert.main_convert(ns) == 0


def test_main_convert_checks_quality_against_compressai_widths(tmp_path):
    with pytest.raises(ModelError, match=r"N=12, M=16.*quality 3 uses N=128, M=192"):
        convert.main_convert([str(PTH), str(tmp_path / "w"), "--model", NAME, "--quality", "3"])
    with pytest.raises(ModelError, match="qualities 1-6"):
        convert.main_convert([str(PTH), str(tmp_path / "w"), "--model", "cheng2020-attn", "--quality", "7"])


def test_unknown_model_and_unreadable_files(tmp_path, state_dict):
    with pytest.raises(ModelError, match="unknown CompressAI model"):
        convert.convert_state_dict(state_dict, "bmshj2018-factorized")
    with pytest.raises(JaxlicError, match="not found"):
        convert.load_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(JaxlicError, match="not a readable PyTorch checkpoint"):
        convert.read_torch_checkpoint(str(junk))


def test_builtin_reader_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": os.system}))
    with pytest.raises(JaxlicError, match="unsupported object posix.system|unsupported object nt.system"):
        convert.read_torch_checkpoint(str(path))


def test_builtin_reader_matches_torch_for_both_file_formats(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    sd = {
        "w": torch.randn(4, 3, 5, 5, generator=g),
        "t": torch.randn(3, 4, generator=g).t(),  # non-contiguous
        "h": torch.randn(6, generator=g).half(),
        "b": torch.randn(6, generator=g).bfloat16(),
        "i": torch.arange(7, dtype=torch.int32),
        "s": torch.tensor(2.5),
        "view": torch.randn(10, generator=g)[3:7],  # offset into a shared storage
    }
    for zip_format in (True, False):
        path = tmp_path / f"ckpt-{zip_format}.pth.tar"
        torch.save({"epoch": 3, "state_dict": sd}, path, _use_new_zipfile_serialization=zip_format)
        got = convert.read_torch_checkpoint(str(path))
        assert got["epoch"] == 3
        for k, v in sd.items():
            want = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
            np.testing.assert_array_equal(got["state_dict"][k], want, err_msg=k)
        assert convert.load_checkpoint(path).keys() == sd.keys()


def test_npz_state_dict_needs_no_torch(tmp_path, state_dict):
    buf = io.BytesIO()
    np.savez(buf, **{f"state_dict/{k}": v for k, v in state_dict.items()}, other=np.zeros(1))
    path = tmp_path / "sd.npz"
    path.write_bytes(buf.getvalue())
    assert convert.load_checkpoint(path).keys() == state_dict.keys()


def test_load_checkpoint_works_without_torch(monkeypatch, state_dict):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    sd = convert.load_checkpoint(PTH)
    assert all(np.array_equal(sd[k], v) for k, v in state_dict.items())


def test_cli_subcommand_delegates_to_the_converter(tmp_path, capsys):
    from jaxlic import cli

    out = tmp_path / "w.msgpack"
    assert cli.main(["convert-compressai", str(PTH), "--model", NAME, str(out)]) == 0
    assert out.exists() and "converted bmshj2018-hyperprior" in capsys.readouterr().out
    assert cli.main(["convert-compressai", str(PTH), "--model", NAME, str(out)]) == 1  # exists, no --force
