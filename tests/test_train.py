"""Tests of the trainer (train/trainer.py and its parts) on tiny registry models (N=M=8, batch 2)."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxlic.errors import ModelError
from jaxlic.models import registry
from train import input_pipeline, trainer
from train.configs import cheng2020, ckbd
from train.optim import create_learning_rate_schedule
from train.run_control import NonFiniteLossError, StopRequest, TrainingInterrupted
from train.spec import build_model
from train.state import setup_train_step, to_host
from train.validation import hyperprior_collapse_warning, validation_points, z_health

# The cheapest registry model to compile: the trainer's mechanics do not depend on the model,
# and every family gets its own smoke step below.
MODEL = "bmshj2018-hyperprior"


def tiny_config(data_dir, model=MODEL, **overrides):
    c = (cheng2020 if model.startswith(("cheng", "mbt", "bmshj")) else ckbd).get_config("smoke")
    c.model = model
    c.N, c.M = 8, 8
    c.data.source = str(data_dir)
    c.data.eval_dir = str(data_dir)
    c.data.num_threads = 1
    c.async_checkpointing = False
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


@pytest.fixture(scope="module")
def data_dir(write_images, tmp_path_factory):
    d = tmp_path_factory.mktemp("train_images")
    write_images(d, n=4, size=(80, 96))
    return d


def setup_step(config):
    _, state, step, train_key = setup_train_step(config)
    return state, step, train_key


def fixed_batch(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (2, 8, 8, 3)).astype(np.float32)
    return np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)  # smooth-ish 64x64 images


def leaves(params):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}


@pytest.mark.parametrize("model", ["ckbd-full", "cheng2020-anchor", "bmshj2018-hyperprior"])
def test_one_train_step_per_model_family_is_finite(data_dir, model):
    state, step, key = setup_step(tiny_config(data_dir, model))
    state, metrics = step(state, fixed_batch(), key)
    metrics = jax.device_get(metrics)
    for name in ("loss", "mse", "bpp", "bpp_y", "bpp_z", "psnr", "aux_loss", "grad_norm"):
        assert np.isfinite(metrics[name]), (name, metrics)
    assert metrics["finite"] == 1.0 and int(state.step) == 1


def test_quantiles_are_trained_by_the_aux_loss_only(data_dir):
    config = tiny_config(data_dir, **{"optim.learning_rate": 0.0})
    state, step, key = setup_step(config)
    before = leaves(state.params)
    state, _ = step(state, fixed_batch(), key)
    after = leaves(state.params)
    quantiles = [k for k in before if k.endswith("['quantiles']")]
    assert quantiles
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == (k in quantiles), k


def test_loss_decreases_on_a_fixed_batch(data_dir):
    config = tiny_config(data_dir, **{"optim.learning_rate": 3e-3, "optim.schedule": "constant"})
    state, step, key = setup_step(config)
    batch = fixed_batch()
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch, key)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_nonfinite_step_skips_the_update(data_dir):
    state, step, key = setup_step(tiny_config(data_dir))
    before = leaves(state.params)
    bad = fixed_batch()
    bad[0, 0, 0, 0] = np.nan
    state, metrics = step(state, bad, key)
    assert float(metrics["finite"]) == 0.0 and int(metrics["nonfinite"]) == 1
    assert int(state.step) == 1
    for k, v in leaves(state.params).items():
        np.testing.assert_array_equal(v, before[k])
    state, metrics = step(state, fixed_batch(), key)
    assert float(metrics["finite"]) == 1.0 and int(state.nonfinite) == 0


def test_resumed_run_is_bit_identical_and_exports_weights(data_dir, tmp_path):
    config = tiny_config(data_dir, num_steps=4, checkpoint_every_steps=2)
    full = trainer.train_and_evaluate(config, tmp_path / "full")
    halted = tiny_config(data_dir, num_steps=4, checkpoint_every_steps=2, halt_after_steps=2)
    trainer.train_and_evaluate(halted, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "export").exists()
    resumed = trainer.train_and_evaluate(config, tmp_path / "resumed")
    assert int(resumed.step) == int(full.step) == 4
    a, b = leaves(full.params), leaves(resumed.params)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    a, b = leaves(full.opt_state), leaves(resumed.opt_state)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    params, meta = weights.load(tmp_path / "full" / "export" / f"{MODEL}-q3.msgpack")
    assert (meta["model"], meta["quality"], meta["N"], meta["M"]) == (MODEL, 3, 8, 8)
    assert meta["lmbda"] == pytest.approx(0.01) and "loss" in meta["metrics"]
    # z health is a validation metric: its share of the rate and its live channels.
    assert 0.0 < meta["metrics"]["z_share"] < 1.0 and 0 <= meta["metrics"]["live_z_channels"] <= 8
    final = leaves(full.params)
    for k, v in leaves(params).items():
        np.testing.assert_array_equal(v, final[k], err_msg=k)
    info = json.loads((tmp_path / "full" / "export" / f"{MODEL}-q3.json").read_text())
    assert info["train_config"]["num_steps"] == 4


def test_milestones_export_the_weights_of_their_step(data_dir, tmp_path):
    config = tiny_config(data_dir, num_steps=4, checkpoint_every_steps=2, export_every_steps=2)
    state = trainer.train_and_evaluate(config, tmp_path)
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    exported = {}
    for step in (2, 4):
        params, meta = weights.load(tmp_path / "milestones" / str(step) / "export" / f"{MODEL}-q3.msgpack")
        assert meta["metrics"]["step"] == step
        exported[step] = leaves(params)
    assert not (tmp_path / "milestones" / "3").exists()
    final = leaves(state.params)
    assert any(not np.array_equal(exported[2][k], final[k]) for k in final)  # step 2's, not the end's
    for k in final:
        np.testing.assert_array_equal(exported[4][k], final[k], err_msg=k)


def test_wall_clock_budget_stops_cleanly_with_a_checkpoint_and_an_export(data_dir, tmp_path):
    config = tiny_config(data_dir, num_steps=50, checkpoint_every_steps=50, max_wall_s=1e-3)
    state = trainer.train_and_evaluate(config, tmp_path)
    assert int(state.step) == 1  # the budget is spent before the first step ends
    assert (tmp_path / "checkpoints" / "1").is_dir()
    info = json.loads((tmp_path / "export" / f"{MODEL}-q3.json").read_text())
    assert info["metrics"]["step"] == 1 and "loss" in info["metrics"] and "train_loss" in info["metrics"]
    assert list(tmp_path.glob("events.out.tfevents.*"))  # TensorBoard events without TensorFlow
    # Resuming without a budget continues from the checkpoint.
    resumed = trainer.train_and_evaluate(tiny_config(data_dir, num_steps=2, max_wall_s=0.0), tmp_path)
    assert int(resumed.step) == 2


def test_sigterm_checkpoints_the_step_and_stops_then_the_run_resumes(data_dir, tmp_path, monkeypatch):
    import os
    import signal

    real = input_pipeline.create_train_iterator

    def terminated_after_two_batches(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2 and kwargs.get("start_step", 0) == 0:  # while step 3 is under way
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    monkeypatch.setattr(input_pipeline, "create_train_iterator", terminated_after_two_batches)
    config = tiny_config(data_dir, num_steps=8, checkpoint_every_steps=100)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"^stopped by SIGTERM after step 3, checkpointed"):
        trainer.train_and_evaluate(config, tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert ocp.CheckpointManager(tmp_path / "checkpoints").latest_step() == 3
    assert not (tmp_path / "export").exists()  # not a finished run
    resumed = trainer.train_and_evaluate(config, tmp_path)
    assert int(resumed.step) == 8 and (tmp_path / "export" / f"{MODEL}-q3.json").exists()


def test_stop_request_second_signal_interrupts_at_once():
    import os
    import signal

    # Python's own SIGINT handler, whatever this process inherited: a suite started in the
    # background (`cmd &`, nohup) ignores SIGINT, and a second signal then does nothing.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequest() as stop:
            assert not stop.requested(1, 50)
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested(2, 50) and stop.signum == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_consecutive_nonfinite_steps_stop_the_run_keeping_the_last_good_checkpoint(data_dir, tmp_path):
    good = trainer.train_and_evaluate(
        tiny_config(data_dir, num_steps=2, **{"data.num_eval_images": 0}), tmp_path
    )
    bad = tiny_config(
        data_dir, num_steps=10, lmbda=float("nan"), max_nonfinite_steps=3, **{"data.num_eval_images": 0}
    )
    with pytest.raises(NonFiniteLossError):
        trainer.train_and_evaluate(bad, tmp_path)
    mngr = ocp.CheckpointManager(tmp_path / "checkpoints")
    assert mngr.latest_step() == 4  # saved after two skipped steps: still the step-2 params
    restored = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore())
    for k, v in leaves(good.params).items():
        np.testing.assert_array_equal(leaves(restored["params"])[k], v, err_msg=k)


def test_schedule_start_restarts_the_schedule_for_fine_tuning():
    c = ckbd.get_config("cpu")
    c.num_steps, c.optim.learning_rate, c.optim.warmup_steps = 1000, 2e-4, 100
    base = create_learning_rate_schedule(c)
    c.optim.schedule_start = 600
    restarted = create_learning_rate_schedule(c)
    # Before the restart: zero; from it on: the base schedule of a 400-step run, shifted by 600.
    assert float(restarted(0)) == float(restarted(599)) == 0.0
    c.optim.schedule_start, c.num_steps = 0, 400
    short = create_learning_rate_schedule(c)
    for s in (600, 650, 700, 850, 1000):
        np.testing.assert_allclose(float(restarted(s)), float(short(s - 600)), rtol=1e-6)
    np.testing.assert_allclose(float(restarted(700)), 2e-4, rtol=1e-6)  # peak after the warm-up
    assert float(base(700)) != float(restarted(700))
    c.optim.schedule_start = 400
    with pytest.raises(ValueError, match="schedule_start"):
        create_learning_rate_schedule(c)


def test_hyperprior_collapse_warning_fires_only_below_one_percent():
    assert hyperprior_collapse_warning({"bpp": 0.23, "bpp_z": 0.0012}) is not None
    assert "collapse" in hyperprior_collapse_warning({"bpp": 0.23, "bpp_z": 0.0012})
    assert hyperprior_collapse_warning({"bpp": 0.20, "bpp_z": 0.0135}) is None
    assert hyperprior_collapse_warning({"bpp": 0.0, "bpp_z": 0.0}) is None
    assert hyperprior_collapse_warning({"bpp": 0.2}) is None


def test_init_from_starts_from_a_weights_file_of_the_same_model(data_dir, tmp_path):
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    state, _, _ = setup_step(tiny_config(data_dir, seed=1))
    path = tmp_path / "w.msgpack"
    weights.save(path, to_host(state.params), {"model": MODEL, "N": 8, "M": 8})

    warm, step, key = setup_step(tiny_config(data_dir, seed=2, init_from=str(path)))
    cold, _, _ = setup_step(tiny_config(data_dir, seed=2))
    got, want, other = leaves(warm.params), leaves(state.params), leaves(cold.params)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert any(not np.array_equal(got[k], other[k]) for k in want)  # not the seed's random init
    assert int(warm.step) == 0
    warm, metrics = step(warm, fixed_batch(), key)  # a fresh optimizer state that steps
    assert bool(metrics["finite"])

    weights.save(path, to_host(state.params), {"model": "ckbd", "N": 8, "M": 8})
    with pytest.raises(ValueError, match="init_from"):
        setup_step(tiny_config(data_dir, init_from=str(path)))


def test_variable_rate_run_warm_starts_from_its_fixed_rate_weights(data_dir, tmp_path):
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    state, _, _ = setup_step(tiny_config(data_dir, model="ckbd", seed=1))
    path = tmp_path / "fixed.msgpack"
    weights.save(path, to_host(state.params), {"model": "ckbd", "N": 8, "M": 8})
    warm, step, key = setup_step(tiny_config(data_dir, model="ckbd-vr", seed=2, init_from=str(path)))
    got, want = leaves(warm.params), leaves(state.params)
    fresh = {k for k in got if k.startswith(("['gain']", "['inv_gain']"))}
    assert fresh and set(got) - fresh == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # Point i starts at gain sqrt(lambda_i / lambda_default) (inverse: its reciprocal), so the
    # default point is exactly the fixed-rate model and the others sit where they roughly belong.
    default = registry.default_rate(registry.VR_LAMBDAS)
    want_log = 0.5 * np.log(np.asarray(registry.VR_LAMBDAS) / registry.VR_LAMBDAS[default])
    for k in fresh:
        sign = -1.0 if k.startswith("['inv_gain']") else 1.0
        np.testing.assert_allclose(got[k], np.broadcast_to(sign * want_log[:, None], got[k].shape), rtol=1e-6)
        np.testing.assert_array_equal(got[k][default], 0.0)
    warm, metrics = step(warm, fixed_batch(), key)
    assert bool(metrics["finite"])
    weights.save(path, to_host(state.params), {"model": "ckbd-gmm", "N": 8, "M": 8})
    with pytest.raises(ValueError, match="init_from"):
        setup_step(tiny_config(data_dir, model="ckbd-vr", init_from=str(path)))


def test_z_gain_run_warm_starts_from_variable_rate_weights_without_them(data_dir, tmp_path):
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    state, _, _ = setup_step(tiny_config(data_dir, model="ckbd-vr", seed=1))
    path = tmp_path / "vr.msgpack"
    weights.save(path, to_host(state.params), {"model": "ckbd-vr", "N": 8, "M": 8})
    config = tiny_config(data_dir, model="ckbd-vr", seed=2, init_from=str(path))
    config.model_kwargs.z_gains = True
    warm, step, key = setup_step(config)
    got, want = leaves(warm.params), leaves(state.params)
    fresh = {k for k in got if k.startswith(("['z_gain']", "['inv_z_gain']"))}
    assert fresh and set(got) - fresh == set(want)
    for k in want:  # y's trained gains are kept, not spread again
        np.testing.assert_array_equal(got[k], want[k])
    default = registry.default_rate(registry.VR_LAMBDAS)
    want_log = 0.5 * np.log(np.asarray(registry.VR_LAMBDAS) / registry.VR_LAMBDAS[default])
    for k in fresh:  # z's fresh gains spread like y's
        sign = -1.0 if k.startswith("['inv_z_gain']") else 1.0
        np.testing.assert_allclose(got[k], np.broadcast_to(sign * want_log[:, None], got[k].shape), rtol=1e-6)
    warm, metrics = step(warm, fixed_batch(), key)
    assert bool(metrics["finite"])


def test_resume_does_not_reread_the_init_from_file(data_dir, tmp_path):
    from jaxlic import weights  # pylint: disable=g-import-not-at-top

    state, _, _ = setup_step(tiny_config(data_dir, seed=1))
    path = tmp_path / "w.msgpack"
    weights.save(path, to_host(state.params), {"model": MODEL, "N": 8, "M": 8})
    overrides = dict(
        init_from=str(path), num_steps=4, checkpoint_every_steps=2, **{"data.num_eval_images": 0}
    )
    trainer.train_and_evaluate(tiny_config(data_dir, halt_after_steps=2, **overrides), tmp_path / "run")
    path.unlink()  # the warm-start file is gone; the checkpoint alone must carry the resume
    resumed = trainer.train_and_evaluate(tiny_config(data_dir, **overrides), tmp_path / "run")
    assert int(resumed.step) == 4
    with pytest.raises(ModelError, match="not found"):  # a fresh run still needs it
        trainer.train_and_evaluate(tiny_config(data_dir, **overrides), tmp_path / "fresh")


def test_variable_rate_smoke_run_trains_and_exports(data_dir, tmp_path):
    from jaxlic import zoo  # pylint: disable=g-import-not-at-top

    config = ckbd.get_config("smoke,vr")
    assert config.model == "ckbd-full-vr"
    config = tiny_config(data_dir, model="ckbd-vr", num_steps=2, checkpoint_every_steps=2, eval_every_steps=2)
    spec = build_model(config)
    assert spec.lambdas == registry.VR_LAMBDAS and spec.quality == 0
    state = trainer.train_and_evaluate(config, tmp_path)
    assert int(state.step) == 2
    path = tmp_path / "export" / "ckbd-vr-q0.msgpack"
    info = json.loads(path.with_suffix(".json").read_text())
    top = len(registry.VR_LAMBDAS) - 1
    assert info["lambdas"] == list(registry.VR_LAMBDAS) and info["config"]["num_rates"] == top + 1
    assert validation_points(top + 1) == [0, top // 2, top]
    for key in ("loss", "loss_q0", f"loss_q{top // 2}", f"loss_q{top}", f"bpp_q{top}"):
        assert np.isfinite(info["metrics"][key]), key
    # Fresh gains spread the points from the start (all gains 1 would code every point alike).
    assert info["metrics"][f"bpp_q{top}"] > 1.5 * info["metrics"]["bpp_q0"]
    codec = zoo.load(weights=path)
    assert codec.variable_rate and codec.rate_range == (0.0, float(top))
    assert codec.default_rate == registry.default_rate(registry.VR_LAMBDAS)
    img = (np.random.default_rng(0).uniform(size=(32, 48, 3)) * 255).astype(np.uint8)
    assert codec.decompress(codec.compress(img, quality=2.5)).shape == img.shape


def test_z_health_counts_the_channels_of_z_hat_that_vary():
    z_hat = np.zeros((1, 2, 3, 4), np.float32)
    z_hat[0, 1, 2, 0] = 1.0  # channel 0 varies over the image
    z_hat[0, :, :, 2] = 5.0  # channel 2 is constant (not live)
    z_hat[0, 0, 0, 3] = -2.0  # channel 3 varies
    assert float(z_health({"z_hat": z_hat})["live_z_channels"]) == 2.0


def test_exact_fine_tune_warm_starts_a_float_model_and_exports_it_on_its_integer_grid(data_dir, tmp_path):
    """`config.exact` trains the exact entropy path quantisation-aware from float weights (the
    short fine-tune that converts a model); the export is snapped to the integer grid (the integer
    weights of the file are the trained ones), carries its int32 bounds and writes exact streams."""
    from jaxlic import weights, zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.coding import container  # pylint: disable=g-import-not-at-top

    float_state, _, _ = setup_step(tiny_config(data_dir, model="ckbd", seed=1))
    path = tmp_path / "float.msgpack"
    weights.save(path, to_host(float_state.params), {"model": "ckbd", "N": 8, "M": 8})
    config = tiny_config(
        data_dir,
        model="ckbd",
        init_from=str(path),
        exact="6,8,8,8,8,6,6,6",
        num_steps=2,
        checkpoint_every_steps=2,
        eval_every_steps=2,
    )
    assert build_model(config).module.cfg.exact == (6, 8, 8, 8, 8, 6, 6, 6)
    state = trainer.train_and_evaluate(config, tmp_path / "run")
    assert int(state.step) == 2
    out = tmp_path / "run" / "export" / "ckbd-q3.msgpack"
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["config"]["exact"] == [6, 8, 8, 8, 8, 6, 6, 6]
    assert all(0 < b < 1 for v in info["exact_bounds"].values() for b in v)
    params, _ = weights.load(out)
    k = params["h_s_0"]["kernel"]
    e = 9 - np.frexp(np.abs(k).reshape(-1, k.shape[-1]).max(0))[1]
    assert np.array_equal(k * 2.0**e, np.round(k * 2.0**e))  # on the grid: integers times 2^-e
    codec = zoo.load(weights=out)
    img = (np.random.default_rng(0).uniform(size=(64, 64, 3)) * 255).astype(np.uint8)
    data = codec.compress(img)
    assert container.unpack(data)[0].exact and codec.decompress(data).shape == img.shape
    with pytest.raises(ValueError, match="comma-separated"):
        build_model(tiny_config(data_dir, model="ckbd", exact="6;8"))
