"""Tests of train/input_pipeline.py and train/data_sources.py: crops, exact resume, sharding, corrupt
files, TFDS."""

import logging as std_logging
import pathlib
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest
from absl import logging
from PIL import Image

from train import data_sources, input_pipeline
from train.configs import common

NUM_FILES = 6


def file_ids(batch: np.ndarray) -> list[int]:
    return [int(round((b[..., 0].mean() * 255 - 10) / 40)) for b in batch]


def data_config(source, crop=32) -> ml_collections.ConfigDict:
    c = common.get_config().data
    c.source = str(source)
    c.crop_size = crop
    c.prefetch = 1
    c.num_threads = 1
    return c


def take(ds_iter, n):
    return [next(ds_iter) for _ in range(n)]


def test_batches_are_float_crops_in_unit_range(write_images, tmp_path):
    write_images(tmp_path)
    it = input_pipeline.create_train_iterator(data_config(tmp_path), local_batch_size=3, seed=0)
    batch = next(it)
    assert batch.shape == (3, 32, 32, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_each_epoch_visits_every_file_once_in_a_new_order(write_images, tmp_path):
    write_images(tmp_path)
    it = input_pipeline.create_train_iterator(data_config(tmp_path), local_batch_size=3, seed=0)
    ids = sum((file_ids(b) for b in take(it, 4)), [])
    first, second = ids[:NUM_FILES], ids[NUM_FILES:]
    assert sorted(first) == sorted(second) == list(range(NUM_FILES))
    assert first != second


def test_resume_at_step_reproduces_the_uninterrupted_batches(write_images, tmp_path):
    write_images(tmp_path)
    cfg = data_config(tmp_path)
    full = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=7), 5)
    resumed = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=7, start_step=3), 2)
    np.testing.assert_array_equal(resumed[0], full[3])
    np.testing.assert_array_equal(resumed[1], full[4])
    other_seed = next(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=8))
    assert not np.array_equal(other_seed, full[0])


def test_processes_read_disjoint_shards_of_the_files(write_images, tmp_path):
    write_images(tmp_path)
    cfg = data_config(tmp_path)
    seen = []
    for p in range(2):
        it = input_pipeline.create_train_iterator(
            cfg, local_batch_size=3, seed=0, process_index=p, process_count=2
        )
        seen.append(set(sum((file_ids(b) for b in take(it, 2)), [])))
    assert len(seen[0]) == len(seen[1]) == NUM_FILES // 2
    assert not seen[0] & seen[1]


def test_small_images_are_upscaled_to_the_crop(write_images, tmp_path):
    write_images(tmp_path, n=2, size=(20, 24))
    batch = next(
        input_pipeline.create_train_iterator(data_config(tmp_path, crop=64), local_batch_size=2, seed=0)
    )
    assert batch.shape == (2, 64, 64, 3)


class _Capture(std_logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def capture_warnings(fn):
    handler = _Capture()
    logging.get_absl_logger().addHandler(handler)
    try:
        return fn(), handler.messages
    finally:
        logging.get_absl_logger().removeHandler(handler)


def test_corrupt_and_truncated_files_are_skipped_with_a_warning(write_images, tmp_path):
    paths = write_images(tmp_path)
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image")
    # A truncated PNG passes the header scan and fails only when it is decoded.
    good = paths[1].read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])

    def read():  # more samples than files: every file gets read
        return take(
            input_pipeline.create_train_iterator(data_config(tmp_path), local_batch_size=4, seed=0), 4
        )

    batches, messages = capture_warnings(read)
    assert all(b.shape == (4, 32, 32, 3) for b in batches)
    assert set(sum((file_ids(b) for b in batches), [])) <= set(range(NUM_FILES))
    assert any("garbage.jpg" in m for m in messages), messages
    assert any("truncated.png" in m for m in messages), messages
    # The truncated file is replaced by the next one of its epoch: still a function of (seed, step).
    again, _ = capture_warnings(read)
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a, b)


def test_order_is_a_pure_function_of_seed_and_step_whatever_the_threads(write_images, tmp_path):
    write_images(tmp_path)
    ref = None
    for threads, batch in ((1, 2), (4, 2), (2, 2)):
        cfg = data_config(tmp_path)
        cfg.num_threads = threads
        it = input_pipeline.create_train_iterator(cfg, local_batch_size=batch, seed=3, start_step=5)
        got = take(it, 3)
        if ref is None:
            ref = got
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a, b)
    # Step 6 of a run started at 0 is step 6 of a run resumed at 5 (batch 2: samples 12, 13).
    sampler = input_pipeline.Sampler(
        data_sources.FileSource(data_sources.list_image_files(tmp_path)), 3, 0, 32
    )
    np.testing.assert_array_equal(ref[1][0], sampler(12).astype(np.float32) / 255)


def test_grain_worker_processes_give_the_same_batches(write_images, tmp_path):
    write_images(tmp_path)
    cfg = data_config(tmp_path)
    ref = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=1, start_step=2), 3)
    cfg.num_workers = 2
    got = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=1, start_step=2), 3)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


def test_per_host_shards_are_disjoint_and_cover_the_records(write_images, tmp_path):
    write_images(tmp_path, n=7)
    cfg = data_config(tmp_path)
    shards = [set(data_sources.make_source(cfg, p, 3).files) for p in range(3)]
    assert sum(len(s) for s in shards) == 7 and len(set.union(*shards)) == 7


def test_small_images_keep_their_content_when_upscaled(tmp_path):
    img = np.zeros((10, 30, 3), np.uint8)
    img[..., 0] = 200
    up = input_pipeline.upscale_to(img, 40)
    assert up.shape == (40, 120, 3) and np.all(up[..., 0] == 200)
    crop = input_pipeline.random_crop_flip(img, np.random.default_rng(0), 40)
    assert crop.shape == (40, 40, 3)
    gray = input_pipeline.decode_image(np.zeros((5, 6), np.uint8))
    assert gray.shape == (5, 6, 3)


def _fake_tfds(num=6, key="image"):
    """A stand-in for tensorflow_datasets: `data_source` returns PNG-encoded records."""
    import io

    records = []
    for i in range(num):
        img = np.zeros((20, 24, 3), np.uint8)  # smaller than the crop: upscaled
        img[..., 0] = 40 * i + 10
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        records.append({key: buf.getvalue(), "label": i})
    calls = []

    def data_source(name, split, data_dir=None):
        calls.append((name, split, data_dir))
        return records

    return types.SimpleNamespace(data_source=data_source, calls=calls)


def test_tfds_path_reads_a_fake_data_source_and_resumes_exactly(monkeypatch):
    fake = _fake_tfds(key="hr")
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    cfg = data_config("tfds:div2k:train[:50%]", crop=32)
    full = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=0), 3)
    resumed = next(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=0, start_step=2))
    assert fake.calls[0] == ("div2k", "train[:50%]", None)
    assert full[0].shape == (2, 32, 32, 3) and full[0].dtype == np.float32
    np.testing.assert_array_equal(resumed, full[2])
    assert sorted(sum((file_ids(b) for b in full), [])) == sorted(list(range(6)))
    ids = [
        set(
            sum(
                (
                    file_ids(b)
                    for b in take(
                        input_pipeline.create_train_iterator(
                            cfg, local_batch_size=3, seed=0, process_index=p, process_count=2
                        ),
                        1,
                    )
                ),
                [],
            )
        )
        for p in range(2)
    ]
    assert ids == [{0, 2, 4}, {1, 3, 5}]


def test_tfds_without_tensorflow_datasets_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(input_pipeline.DataError, match="tfds"):
        input_pipeline.create_train_iterator(data_config("tfds:clic"), local_batch_size=2, seed=0)


def test_training_code_does_not_import_tensorflow():
    code = (
        "import sys; import train.trainer, train.input_pipeline, train.main; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'clu')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1])


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(input_pipeline.DataError, match="does not exist"):
        input_pipeline.create_train_iterator(data_config(tmp_path / "nope"), local_batch_size=2, seed=0)


def test_tfds_mock_data_yields_batches_and_resumes_exactly():
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = data_config("tfds:div2k", crop=32)  # mock images are tiny: exercises upscaling too
    with tfds.testing.mock_data(num_examples=6):
        full = take(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=0), 3)
        resumed = next(input_pipeline.create_train_iterator(cfg, local_batch_size=2, seed=0, start_step=2))
    assert full[0].shape == (2, 32, 32, 3) and full[0].dtype == np.float32
    np.testing.assert_array_equal(resumed, full[2])


def test_validation_images_are_cropped_to_multiples_of_64(write_images, tmp_path):
    write_images(tmp_path, n=2, size=(150, 140))
    cfg = data_config(tmp_path)
    cfg.eval_dir = str(tmp_path)
    cfg.num_eval_images = 2
    cfg.eval_crop = 0
    images = input_pipeline.load_eval_images(cfg)
    assert [im.shape for im in images] == [(128, 128, 3)] * 2


def test_missing_validation_folder_skips_validation(tmp_path):
    cfg = data_config(tmp_path)
    cfg.eval_dir = str(tmp_path / "nope")
    assert input_pipeline.load_eval_images(cfg) == []
