"""The training benchmarks run end to end on tiny settings and write the JSON they document."""

import argparse
import json
import math

import numpy as np
from PIL import Image

from eval import conv_grad, train_parity


def test_conv_grad_pieces_match_xla(tmp_path):
    out = tmp_path / "c.json"
    conv_grad.main(["--batch", "2", "--scale", "0.125", "--repeats", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert len(result["layers"]) == len(conv_grad.SHAPES)
    for row in result["layers"]:
        assert row["rel_err"] < 1e-5, row
        assert row["weight_grad_split_ms"] > 0 and row["ratio_xla_over_split"] > 0


def test_train_parity_jaxlic_side(write_images, tmp_path):
    data = tmp_path / "train"
    write_images(data, n=4, size=(80, 96))
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (70, 130, 3), np.uint8)).save(kodak / f"k{i}.png")
    out = tmp_path / "p.json"
    train_parity.main(
        [
            "--steps",
            "4",
            "--batch",
            "2",
            "--size",
            "64",
            "--N",
            "8",
            "--M",
            "8",
            "--log-every",
            "2",
            "--num-eval",
            "2",
            "--data",
            str(data),
            "--kodak",
            str(kodak),
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    r = result["jaxlic"]
    assert len(r["loss_curve"]) == 2 and all(math.isfinite(v) for v in r["loss_curve"])
    assert r["kodak_bpp"] > 0 and math.isfinite(r["kodak_psnr"])
    assert r["kodak_loss"] > r["kodak_bpp"]  # rate plus a positive distortion term
    assert "compressai" not in result


def test_draw_batches_follows_the_training_pipeline(write_images, tmp_path):
    write_images(tmp_path, n=4, size=(80, 96))
    ns = argparse.Namespace(data=str(tmp_path), size=32, batch=3, steps=2, seed=0)
    a, b = train_parity.draw_batches(ns), train_parity.draw_batches(ns)
    assert a.shape == (2, 3, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same seed, same batches: both frameworks see the same data
