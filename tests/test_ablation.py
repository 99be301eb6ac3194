"""eval/ablation.py: the ablation table per image at matched rate, from `jaxlic eval` records."""

import csv
import json
import math

import pytest

from eval import ablation
from jaxlic.evaluation import matched

RATES = (0.08, 0.12, 0.2, 0.4)


def _write(tmp_path, name, shift_by_image, decode=1.0):
    """Per-image rows of a model whose PSNR on image i is the baseline's plus shift_by_image[i]."""
    path = tmp_path / f"per_image_{name}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=matched.FIELDS)
        w.writeheader()
        for i, (image, shift) in enumerate(shift_by_image.items()):
            for q, bpp in enumerate(RATES):
                psnr = 30.0 + i + 4.0 * math.log2(bpp / 0.15) + shift
                w.writerow(
                    dict(
                        image=image + ".png",  # as jaxlic eval names them
                        kind="model",
                        name=name,
                        quality=q,
                        height=64,
                        width=64,
                        size_bytes=int(bpp * 512),
                        bpp=bpp,
                        bpp_estimated=bpp,
                        psnr=psnr,
                        ms_ssim=0.9,
                        encoding_time=1.0,
                        decoding_time=decode,
                    )
                )
    return str(path)


def test_gain_at_rate_reads_both_curves_of_each_image_at_the_rate():
    rows = lambda name, s: [  # noqa: E731
        dict(image=img, name=name, quality=q, bpp=b, psnr=30 + math.log2(b) + s.get(img, 0.0))
        for img in ("a", "b")
        for q, b in enumerate(RATES)
    ]
    gain = matched.gain_at_rate(rows("t", {"a": 0.2, "b": 0.4}), rows("base", {}), 0.15)
    assert gain["mean_db"] == pytest.approx(0.3) and gain["n"] == 2 and gain["outside"] == 0
    assert gain["per_image"] == pytest.approx({"a": 0.2, "b": 0.4})
    assert matched.gain_at_rate(rows("t", {}), rows("base", {}), 0.5)["outside"] == 2  # beyond 0.4
    with pytest.raises(matched.ComparisonError, match="different images"):
        matched.gain_at_rate(rows("t", {})[:4], rows("base", {}), 0.15)


def test_ablation_writes_json_table_and_plot(tmp_path, capsys):
    images = ("kodim01", "kodim23")
    args = ["--variant", "ckbd=" + _write(tmp_path, "ckbd", dict.fromkeys(images, 0.0), decode=2.0)]
    args += ["--variant", "ckbd-full=" + _write(tmp_path, "ckbd-full", {"kodim01": 0.3, "kodim23": 0.5})]
    args += ["--second-seed", "ckbd=" + _write(tmp_path, "ckbd-s1", {"kodim01": -0.1, "kodim23": 0.1})]
    out = tmp_path / "abl"
    assert ablation.main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "ablation.json").read_text())
    full = record["vs_ckbd"]["ckbd-full"]
    assert full["dpsnr_at_0.15"] == pytest.approx(0.4) and full["n"] == 2 and full["claimed_db"] == 0.37
    assert full["bd_rate"] < 0 and full["ci95"][0] <= 0.4 <= full["ci95"][1]
    assert full["by_rate"]["0.15"] == {"mean_db": full["dpsnr_at_0.15"], "ci95": full["ci95"], "n": 2}
    assert set(full["by_rate"]) == {"0.1", "0.15", "0.2", "0.3", "0.4", "0.5"}
    assert set(record["variants"]) == {"ckbd", "ckbd-full"}
    assert record["variants"]["ckbd"]["decode_s"] == 2.0
    assert record["variants"]["ckbd"]["curve"]["bpp"] == pytest.approx(list(RATES))
    assert record["seed_spread_db"] == pytest.approx(0.0, abs=1e-9)
    spread = record["seed_spread"]["ckbd"]
    assert spread["n"] == 2 and spread["ci95"][0] < 0 < spread["ci95"][1] and "bd_rate_ci95" in spread
    assert set(spread["by_rate"]) == set(full["by_rate"]) and spread["by_rate"]["0.15"]["n"] == 2
    assert "command" in record["provenance"]
    assert record["vs_ckbd_over_seeds"] == {}  # ckbd-full has no second seed
    table = (out / "table.md").read_text()
    assert "| ckbd-full | +0.400" in table and "+0.37" in table
    seed_line = table.strip().splitlines()[-1]
    assert seed_line.startswith("Seed-to-seed difference at 0.15 bpp (second seed − first, per image): ckbd ")
    assert "0.000 dB [" in seed_line and "(2), BD-rate " in seed_line
    assert (out / "rd.png").stat().st_size > 0
    assert "ckbd-full" in capsys.readouterr().out
    assert "not side by side" in table
    times = tmp_path / "decode.json"  # as eval.decode_time writes it; ckbd-full not timed
    times.write_text(
        json.dumps({"command": "python -m eval.decode_time X", "results": {"ckbd": {"decode_s": 0.5}}})
    )
    assert ablation.main([*args, "--decode-times", str(times), "--out", str(out)]) == 0
    record = json.loads((out / "ablation.json").read_text())
    assert (
        record["variants"]["ckbd"]["decode_s"] == 0.5 and record["variants"]["ckbd-full"]["decode_s"] is None
    )
    assert "side by side: python -m eval.decode_time X" in (out / "table.md").read_text()


def test_ablation_compares_each_seed_with_the_baselines_same_seed(tmp_path):
    images = ("kodim01", "kodim23")
    args = ["--variant", "ckbd=" + _write(tmp_path, "ckbd", dict.fromkeys(images, 0.0))]
    args += ["--variant", "ckbd-full=" + _write(tmp_path, "ckbd-full", {"kodim01": 0.3, "kodim23": 0.5})]
    args += ["--second-seed", "ckbd=" + _write(tmp_path, "ckbd-s1", {"kodim01": -0.2, "kodim23": -0.2})]
    # seed 1: +0.1 and -0.1 over ckbd s1, i.e. -0.1 and -0.3 over ckbd s0
    args += [
        "--second-seed",
        "ckbd-full=" + _write(tmp_path, "ckbd-full-s1", {"kodim01": -0.1, "kodim23": -0.3}),
    ]
    out = tmp_path / "abl"
    assert ablation.main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "ablation.json").read_text())
    seeds = record["vs_ckbd_over_seeds"]["ckbd-full"]
    assert seeds["per_seed_db"] == pytest.approx([0.4, 0.0], abs=1e-9)
    assert seeds["mean_db"] == pytest.approx(0.2) and seeds["n"] == 2
    assert seeds["ci95"] == pytest.approx([0.2, 0.2])  # per image (0.3+0.1)/2 and (0.5-0.1)/2
    assert seeds["per_seed_bd_rate"][0] < 0 and abs(seeds["per_seed_bd_rate"][1]) < 0.1  # +-0.1 dB per image
    assert record["seed_spread"]["ckbd-full"]["mean_db"] == pytest.approx(-0.6)
    assert seeds["by_rate"]["0.15"] == {"mean_db": seeds["mean_db"], "ci95": seeds["ci95"], "n": 2}
    assert seeds["by_rate"]["0.3"]["mean_db"] == pytest.approx(0.2)  # the shifts hold at every rate
    table = (out / "table.md").read_text()
    assert (
        "ckbd-full against ckbd on each seed (first, second; same-seed pairs): +0.400 and +0.000 dB" in table
    )
    assert "mean over the seeds +0.200 dB [+0.200, +0.200] (2 images" in table


def test_ablation_errors_are_one_line(tmp_path, capsys):
    full = _write(tmp_path, "ckbd-full", {"kodim01": 0.3})
    assert ablation.main(["--variant", f"ckbd-full={full}"]) == 1  # no baseline
    assert ablation.main(["--variant", f"ckbd-xl={full}"]) == 1
    assert ablation.main(["--variant", "ckbd"]) == 1
    (tmp_path / "t.json").write_text("{}")
    assert ablation.main(["--variant", f"ckbd={full}", "--decode-times", str(tmp_path / "t.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("ablation: error:") for line in err)


def test_ablation_reads_steps_and_seed_from_weights_and_counts_flops(tmp_path):
    import jax
    import numpy as np

    from jaxlic import weights
    from jaxlic.models import registry

    model = registry.get_model("ckbd-vr", 3, N=8)  # zero weights of the right shapes: FLOPs only
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, 0.0, method="forward_train"), x)
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes["params"])
    path = tmp_path / "ckbd-vr.msgpack"
    meta = {  # as train.export.export_weights writes it
        "model": "ckbd-vr",
        "config": model.cfg.to_dict(),
        "quality": 0,
        "metrics": {"step": 1234, "loss": 1.0},
        "train_config": {"seed": 7, "num_steps": 5000},
    }
    weights.save(path, params, meta)
    rows = {"ckbd": matched.read_rows(_write(tmp_path, "ckbd", {"kodim23": 0.0}))}
    record = ablation.ablation(rows, weights={"ckbd": str(path)}, count_flops=True)
    v = record["variants"]["ckbd"]
    assert (v["steps"], v["seed"], v["weights"]) == (1234, 7, str(path))
    assert v["gflops_768x512"] > 0.1  # N=8 at 768 x 512: a fraction of a GFLOP per stage
