"""results/vr_cost/vr_cost.py, a finished study's script: variable-rate against fixed-lambda, per image
at the fixed model's rate."""

import csv
import json

import pytest

from results.vr_cost import vr_cost

FIELDS = ["image", "kind", "name", "quality", "height", "width", "bpp", "psnr"]


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def row(image, name, quality, bpp, psnr):
    return dict(
        image=image, kind="model", name=name, quality=quality, height=64, width=64, bpp=bpp, psnr=psnr
    )


def test_cost_is_the_variable_rate_curve_minus_the_fixed_point_at_the_fixed_rate(tmp_path):
    # Per image i the VR curve is psnr = 30 + i + 10 * log2(bpp / 0.1) (straight in log-rate, so
    # the pchip reading is exact); the fixed model spends 0.15 + 0.01 i bpp at a PSNR 0.2 dB above it.
    import math

    fixed, vr = [], []
    for i in range(6):
        image = f"im{i}.png"
        curve = lambda b, i=i: 30 + i + 10 * math.log2(b / 0.1)  # noqa: E731
        for b in (0.08, 0.12, 0.2, 0.3):
            vr.append(row(image, "ckbd-full-vr", round(b * 10, 2), b, curve(b)))
        b = 0.15 + 0.01 * i
        fixed.append(row(image, "ckbd-full", 1, b, curve(b) + 0.2 + 0.01 * (i % 2)))
    out = tmp_path / "out.json"
    rc = vr_cost.main(
        ["--fixed", str(write_rows(tmp_path / "f.csv", fixed)), "--vr", str(write_rows(tmp_path / "v.csv", vr)),
         "--json", str(out)]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["dpsnr_db"] == pytest.approx(-0.205, abs=1e-6) and res["n"] == 6 and res["outside"] == 0
    lo, hi = res["ci95"]
    assert lo <= res["dpsnr_db"] <= hi and hi < 0
    assert res["fixed_mean_bpp"] == pytest.approx(0.175)


def test_fixed_rows_of_two_qualities_are_refused(tmp_path):
    fixed = [row("a.png", "m", 1, 0.1, 30), row("b.png", "m", 2, 0.2, 31)]
    vr = [row(i, "v", q, b, 30) for i in ("a.png", "b.png") for q, b in ((0, 0.05), (5, 0.5))]
    with pytest.raises(SystemExit, match="one model at one quality"):
        vr_cost.main(
            [
                "--fixed",
                str(write_rows(tmp_path / "f.csv", fixed)),
                "--vr",
                str(write_rows(tmp_path / "v.csv", vr)),
            ]
        )


def test_run_record_reads_steps_and_the_median_rate_without_compile_intervals(tmp_path):
    (tmp_path / "export").mkdir()
    meta = {"model": "ckbd-full-vr", "lambdas": [0.0018, 0.0483], "metrics": {"step": 2000}}
    (tmp_path / "export" / "ckbd-full-vr-q0.json").write_text(json.dumps(meta))
    log = tmp_path / "train.log"
    lines = [f"step {s}: loss 1.0 psnr 25.00 bpp 0.2000 | {r:.2f} steps/s, 3.6 images/s"
             for s, r in ((50, 0.05), (100, 0.45), (150, 0.47), (200, 0.46),  # first run
                          (50, 0.02), (100, 0.44))]  # resumed: its first interval compiles again  # fmt: skip
    log.write_text("\n".join(["I1128 noise"] + lines) + "\n")
    rec = vr_cost.run_record(tmp_path, log)
    assert rec["steps"] == 2000 and rec["model"] == "ckbd-full-vr"
    assert rec["steps_per_s"] == pytest.approx(0.455)


def test_rate_control_script_records_each_target_and_says_when_one_is_out_of_reach(
    small_codec, save_codec, tmp_path
):
    """A fresh variable-rate model codes every rate alike (all gains 1): a target far above its
    one rate is out of reach, which the record says and the exit status reports."""
    import numpy as np
    from PIL import Image

    from eval import rate_control

    codec = small_codec("ckbd-vr")
    save_codec(codec, tmp_path / "vr.msgpack")
    image = tmp_path / "im.png"
    Image.fromarray((np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "rc.json"
    rc = rate_control.main(
        [
            "--weights",
            str(tmp_path / "vr.msgpack"),
            "--images",
            str(image),
            "--targets",
            "200",
            "--json",
            str(out),
        ]
    )
    assert rc == 1
    (r,) = json.loads(out.read_text())["results"]
    assert r["image"] == "im.png" and not r["within_tolerance"] and "below the target" in r["note"]
    assert r["bpp"] < 200 and np.isfinite(r["psnr"])
