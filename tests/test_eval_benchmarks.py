"""The training benchmarks run end to end on tiny settings and write the JSON they document."""

import argparse
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from eval import conv_grad, learning_parity, step_time


def test_conv_grad_pieces_match_xla(tmp_path):
    out = tmp_path / "c.json"
    conv_grad.main(["--batch", "2", "--scale", "0.125", "--repeats", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert len(result["layers"]) == len(conv_grad.SHAPES)
    for row in result["layers"]:
        assert row["rel_err"] < 1e-5, row
        assert row["weight_grad_split_ms"] > 0 and row["ratio_xla_over_split"] > 0


def _fake_checkout(folder, sleep_s, loss_scale):
    """A checkout whose `train.trainer.setup_train_step` steps by sleeping: what eval.step_time needs."""
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "__init__.py").write_text("")
    (folder / "train" / "trainer.py").write_text(
        "import time\n"
        "def setup_train_step(config):\n"
        "    def step(state, batch, key):\n"
        f"        time.sleep({sleep_s})\n"
        f"        return state + 1, {{'loss': {loss_scale} * float(batch.mean()) + state}}\n"
        "    return None, 0, step, None\n"
    )
    (folder / "cfg.py").write_text(
        "import ml_collections\n"
        "def get_config():\n"
        "    return ml_collections.ConfigDict(dict(model='fake', batch_size=2, data=dict(crop_size=8)))\n"
    )
    return folder


def test_step_time_compares_two_checkouts_in_fresh_processes(tmp_path):
    old = _fake_checkout(tmp_path / "old", 0.08, 1.0)
    new = _fake_checkout(tmp_path / "new", 0.02, 1.0)
    cores = sorted(os.sched_getaffinity(0))[:2]
    args = ["--config", "cfg.py", "--steps", "3", "--rounds", "1", "--cores", ",".join(map(str, cores))]
    r = step_time.main(["--old", str(old), "--new", str(new), *args, "--json", str(tmp_path / "r.json")])
    assert r["model"] == "fake" and r["same_losses"] and r["old_commit"] is None  # not a git checkout
    assert 0.06 < r["old_step_s"] < 1 and 0.015 < r["new_step_s"] < r["old_step_s"] and r["speedup"] > 2
    assert json.loads((tmp_path / "r.json").read_text())["rounds"][0]["new"]["times"]
    other = _fake_checkout(tmp_path / "other", 0.0, 2.0)  # other numerics show; one core: in turn
    r = step_time.main(["--old", str(old), "--new", str(other), *args[:-2], "--cores", ""])
    assert not r["same_losses"]


def test_step_time_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    with pytest.raises(SystemExit, match="not a jaxlic checkout"):
        step_time.main(["--old", str(tmp_path)])
    with pytest.raises(SystemExit, match="--old CHECKOUT is required"):
        step_time.main([])


def test_step_time_here_times_one_checkout_with_the_accelerator_fields(tmp_path):
    new = _fake_checkout(tmp_path / "new", 0.03, 1.0)
    args = ["--here", "--new", str(new), "--config", "cfg.py", "--steps", "3"]
    r = step_time.main([*args, "--json", str(tmp_path / "h.json")])
    assert json.loads((tmp_path / "h.json").read_text()) == r
    assert r["config"] == "cfg.py" and "cpu" in r["device"].lower()
    assert 0.025 < r["step_s"] < 1 and r["images_per_s"] == pytest.approx(2 / r["step_s"])
    assert len(r["times"]) == 3 and r["first_step_s"] > 0.025 and r["N"] is None


def _tiny_data(write_images, tmp_path):
    data = tmp_path / "train"
    write_images(data, n=4, size=(80, 96))
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (70, 130, 3), np.uint8)).save(kodak / f"k{i}.png")
    return data, kodak


def test_drawn_batches_follow_the_training_pipeline(write_images, tmp_path):
    write_images(tmp_path, n=4, size=(80, 96))
    ns = argparse.Namespace(data=str(tmp_path), size=32, batch=3, steps=2, seed=0, cache=str(tmp_path / "a"))
    a = np.array(learning_parity.batches_for(ns))
    other = argparse.Namespace(**{**vars(ns), "cache": str(tmp_path / "b")})
    b = np.array(learning_parity.batches_for(other))
    assert a.shape == (2, 3, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same seed, same batches: both frameworks see the same data
    ns.steps = 1  # a shorter run reads the prefix of the cached draw
    np.testing.assert_array_equal(learning_parity.batches_for(ns), a[:1])


def test_learning_parity_run_skip_merge_and_exact_resume(write_images, tmp_path, monkeypatch):
    """One whole run (its record, skipped when complete, merged), then a run interrupted after its
    first checkpoint and resumed: the same curves as the whole run."""
    data, kodak = _tiny_data(write_images, tmp_path)
    common = ["--seed", "0", "--steps", "4", "--batch", "2", "--size", "64", "--data", str(data)]
    common += ["--cache", str(tmp_path / "cache")]
    learning_parity.main(["draw", *common])
    run = ["run", "--framework", "jaxlic", "--model", "ckbd", "--N", "8", *common, "--eval-every", "2"]
    run += ["--log-every", "1", "--num-eval", "2", "--kodak", str(kodak)]
    whole = tmp_path / "whole.json"
    learning_parity.main([*run, "--out", str(whole)])
    r = json.loads(whole.read_text())
    assert r["complete"] and r["steps"] == 4 and r["train_quant"] == "mixed"
    assert [c["step"] for c in r["curve"]] == [2, 4] and len(r["loss_curve"]) == 4
    k = r["kodak"]
    assert k["bpp"] > 0 and math.isfinite(k["psnr"]) and k["rd_loss"] > k["bpp"]
    assert 0 < k["z_share"] <= 1 and 0 <= k["live_z_channels"] <= 8
    assert "command" in r["provenance"] and "machine" in r["provenance"]
    learning_parity.main([*run, "--out", str(whole)])  # a complete run is skipped, not redone
    assert json.loads(whole.read_text()) == r
    merged = tmp_path / "m.json"
    learning_parity.main(["merge", str(whole), "--json", str(merged)])
    m = json.loads(merged.read_text())
    assert m["summary"]["ckbd/2x64px/jaxlic"]["seeds"] == [0] and len(m["runs"]) == 1

    real = learning_parity.record_step

    def interrupted(record, step, *args):
        evaluated = real(record, step, *args)
        if step == 3:  # after the checkpoint of step 2
            raise KeyboardInterrupt
        return evaluated

    cut = tmp_path / "cut.json"
    monkeypatch.setattr(learning_parity, "record_step", interrupted)
    try:
        learning_parity.main([*run, "--out", str(cut)])
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(learning_parity, "record_step", real)
    assert cut.with_suffix(".ckpt").exists() and not json.loads(cut.read_text())["complete"]
    learning_parity.main([*run, "--out", str(cut)])
    resumed = json.loads(cut.read_text())
    assert resumed["complete"] and resumed["resumed_at"] == [2]
    assert resumed["curve"] == r["curve"] and resumed["loss_curve"] == r["loss_curve"]
    assert not cut.with_suffix(".ckpt").exists()


_HLO = """HloModule jit_train_step

%fused_computation.1 (param_0.1: f32[8,34,34,64], param_1.1: f32[3,3,64,256]) -> f32[8,32,32,256] {
  %param_0.1 = f32[8,34,34,64]{3,2,1,0} parameter(0)
  %param_1.1 = f32[3,3,64,256]{3,2,1,0} parameter(1)
  ROOT %convolution.1 = f32[8,32,32,256]{3,2,1,0} convolution(%param_0.1, %param_1.1), window={size=3x3}, dim_labels=b01f_01io->b01f
}

%fused_computation.2 (param_0.2: f32[64,8,34,34], param_1.2: f32[8,32,32,256]) -> f32[64,3,3,256] {
  %param_0.2 = f32[64,8,34,34]{3,2,1,0} parameter(0)
  %param_1.2 = f32[8,32,32,256]{3,2,1,0} parameter(1)
  ROOT %convolution.2 = f32[64,3,3,256]{3,2,1,0} convolution(%param_0.2, %param_1.2), window={size=32x32}, dim_labels=f01b_i01o->b01f
}

ENTRY %main.3 (Arg_0.1: f32[8,34,34,64], Arg_1.2: f32[3,3,64,256], Arg_2.3: f32[100,64], Arg_3.4: f32[64,10]) -> f32[8,32,32,256] {
  %Arg_2.3 = f32[100,64]{1,0} parameter(2)
  %Arg_3.4 = f32[64,10]{1,0} parameter(3)
  %ynn_fusion.1 = f32[8,32,32,256]{3,2,1,0} fusion(%Arg_0.1, %Arg_1.2), kind=kCustom, calls=%fused_computation.1, metadata={op_name="jit(train_step)/jvp(Compressor.forward_train)/Compressor.synthesis/g_s_7/upsample/conv/conv_general_dilated"}
  %ynn_fusion.2 = f32[64,3,3,256]{3,2,1,0} fusion(%a, %b), kind=kCustom, calls=%fused_computation.2, metadata={op_name="jit(train_step)/transpose(jvp(Compressor.forward_train))/Compressor.synthesis/g_s_7/upsample/conv/transpose(jvp())/conv_general_dilated"}
  ROOT %dot.3 = f32[100,10]{1,0} dot(%Arg_2.3, %Arg_3.4), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
"""


def test_step_profile_counts_flops_and_roles_of_the_optimised_hlo():
    from eval import step_profile

    table = step_profile.op_table(_HLO)
    conv_flops = 2 * 8 * 32 * 32 * 256 * 9 * 64  # output elements x taps x input channels
    assert table["ynn_fusion.1"]["flops"] == conv_flops
    assert table["ynn_fusion.2"]["flops"] == conv_flops  # the weight gradient: same multiply-adds
    assert table["dot.3"]["flops"] == 2 * 100 * 10 * 64
    assert [step_profile.role(table[n]) for n in ("ynn_fusion.1", "ynn_fusion.2")] == [
        "forward",
        "weight_grad",
    ]
    assert (
        step_profile.layer_name(table["ynn_fusion.2"]["layer"]) == "Compressor.synthesis/g_s_7/upsample/conv"
    )


def test_learning_parity_merge_compares_only_runs_of_the_same_lambda_and_lr(tmp_path):
    def record(framework, lmbda, lr, rd, steps=2, label=None):
        kodak = {"rd_loss": rd, "psnr": 20.0, "bpp": 0.2, "z_share": 0.1, "live_z_channels": 5.0}
        settings = {"batch": 8, "size": 128, "lmbda": lmbda, "lr": lr, "steps": steps}
        return {
            "framework": framework,
            "label": label or framework,
            "model": "ckbd",
            "seed": 0,
            "steps": steps,
            "complete": True,
            "settings": settings,
            "kodak": kodak,
            "curve": [dict(kodak, rd_loss=2 * rd, step=1), dict(kodak, step=2)]
            if steps == 2
            else [dict(kodak, step=1)],
            "steps_per_s": 1.0,
        }

    files = []
    for i, r in enumerate(
        [
            record("compressai", 0.0035, 5e-4, 2.0),
            record("jaxlic", 0.0035, 5e-4, 1.0),
            record("jaxlic", 0.0483, 1e-4, 8.0),
            record("jaxlic", 0.0035, 5e-4, 3.0, steps=1, label="jaxlic-before"),
        ]
    ):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(r))
    out = tmp_path / "m.json"
    learning_parity.main(["merge", *map(str, files), "--json", str(out)])
    summary = json.loads(out.read_text())["summary"]
    assert summary["ckbd/8x128px/jaxlic"]["rd_loss_ratio_to_compressai"] == 0.5
    before = summary["ckbd/8x128px/jaxlic-before"]  # 1 step: against CompressAI's step-1 evaluation
    assert before["steps"] == 1 and before["rd_loss_ratio_to_compressai"] == 0.75
    other = summary["ckbd/8x128px/lambda0.0483/lr0.0001/jaxlic"]
    assert "rd_loss_ratio_to_compressai" not in other  # no CompressAI run at that lambda and lr


def test_learning_parity_labels_runs_with_non_default_trainer_options_apart():
    def label(*argv):
        args = argparse.Namespace(framework="jaxlic", z_warmup=0, hyper_lr_factor=1.0)
        for k, v in argv:
            setattr(args, k, v)
        return learning_parity.default_label(args)

    assert label() == "jaxlic"
    assert label(("hyper_lr_factor", 0.2)) == "jaxlic-hyperlr0.2"
    assert label(("z_warmup", 1500)) == "jaxlic-zwarm1500"
