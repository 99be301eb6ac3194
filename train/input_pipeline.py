"""tf.data input pipeline for training learned image codecs.

Training data are random square crops (default 256 px) with random horizontal flips, drawn
from either

* a local folder of JPEG/PNG images, searched recursively (the default is the repository's
  `../shared/data/train`), or
* a TensorFlow Datasets dataset, given as ``tfds:NAME`` (for example ``tfds:clic`` or
  ``tfds:div2k``; the image feature is found automatically or set with ``data.tfds_image_key``).

Each process (``jax.process_index()`` of ``jax.process_count()``) reads its own disjoint shard
of the files and yields its *local* part of the global batch.

Determinism and exact resume
----------------------------
Every sample is a pure function of ``(seed, process, k)`` where ``k`` is the process-local
sample counter; batch ``step`` holds samples ``k = step * local_batch ... + local_batch - 1``.

* Folder source: sample ``k`` is file ``perm_e[k mod n]`` of this process's shard, where
  ``perm_e`` is a stateless pseudo-random permutation of epoch ``e = k // n``
  (``tf.random.experimental.index_shuffle``), i.e. every epoch visits every file once in a
  fresh order. Starting at step ``s`` is O(1): the dataset simply starts at
  ``k = s * local_batch``.
* TFDS source: records are shuffled with a fixed seed (``reshuffle_each_iteration`` makes the
  sequence of epoch orders a function of the seed), enumerated, and skipped to
  ``k = s * local_batch``. Skipping reads (but does not decode) the skipped records.
* Crop offsets and flips of sample ``k`` come from stateless TF random ops seeded with
  ``(seed, process, k)``.

Thus a run resumed at step ``s`` sees exactly the batches an uninterrupted run sees. The one
exception is a file that passes the up-front scan but fails to decode later (a truncated
JPEG, say): it is dropped at read time with a warning, which shifts the later samples of that
process by one.

Files smaller than the crop are upscaled (bilinear, antialiased) so their short side equals
the crop size; unreadable files found by the up-front scan are skipped with a warning.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def hide_accelerators_from_tf() -> None:
    """Keeps TF on the CPU so it neither grabs GPU memory nor competes with JAX for it."""
    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
        pass  # Devices were already initialised, or no such device type: nothing to hide.


def resolve_path(path: str) -> pathlib.Path:
    """Resolves `path` relative to the repository root unless it is absolute."""
    p = pathlib.Path(os.path.expanduser(path))
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def list_image_files(root: str | os.PathLike) -> list[str]:
    """All JPEG/PNG files under `root` (recursive), sorted so every process sees one order."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"no JPEG/PNG images under {root}")
    return files


def scan_files(files: Sequence[str], crop_size: int, full: bool = False) -> list[str]:
    """Drops unreadable files (with a warning) and logs the files that will be upscaled.

    Args:
      files: image paths.
      crop_size: training crop size; smaller images are reported as upscaled.
      full: decode every file completely (slow) rather than only its header.

    Returns:
      The readable files, in their original order.
    """
    from PIL import Image  # pylint: disable=g-import-not-at-top

    good, small = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                if full:
                    im.load()
                width, height = im.size
        except Exception as e:  # pylint: disable=broad-except
            logging.warning("Skipping unreadable image %s: %s", path, e)
            continue
        good.append(path)
        if min(width, height) < crop_size:
            small.append(f"{path} ({width}x{height})")
    if small:
        logging.info(
            "%d of %d images are smaller than the %d px crop and will be upscaled: %s%s",
            len(small),
            len(good),
            crop_size,
            ", ".join(small[:5]),
            " ..." if len(small) > 5 else "",
        )
    if not good:
        raise FileNotFoundError("no readable training images")
    return good


def _sample_seed(seed: int, process_index: int, k: tf.Tensor) -> tf.Tensor:
    """Stateless seed [2] of sample `k` of process `process_index`."""
    base = tf.constant([seed, process_index], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, k)


def _random_crop_flip(image: tf.Tensor, seed: tf.Tensor, crop_size: int) -> tf.Tensor:
    """uint8 [H, W, 3] -> float32 [crop, crop, 3] in [0, 1], upscaling images that are too small."""
    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    short = tf.minimum(shape[0], shape[1])

    def upscale():
        scale = tf.cast(crop_size, tf.float32) / tf.cast(short, tf.float32)
        size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
        size = tf.maximum(size, crop_size)
        out = tf.image.resize(image, size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    image = tf.cond(short < crop_size, upscale, lambda: image)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.image.stateless_random_crop(image, [crop_size, crop_size, 3], seed=seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return tf.cast(image, tf.float32) / 255.0


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)


def _folder_samples(files: Sequence[str], seed: int, process_index: int, start: int) -> tf.data.Dataset:
    """(k, encoded image bytes) for k = start, start+1, ... over a per-epoch permutation."""
    n = len(files)
    paths = tf.constant(list(files))

    def pick(k):
        epoch, pos = k // n, k % n
        perm_seed = tf.stack([tf.constant(seed * 1_000_003 + process_index, tf.int64), epoch])
        idx = tf.random.experimental.index_shuffle(pos, seed=perm_seed, max_index=n - 1)
        return k, tf.io.read_file(tf.gather(paths, idx))

    ds = tf.data.Dataset.range(start, np.iinfo(np.int64).max)
    return ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _tfds_image_key(builder, key: str | None) -> str:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    features = builder.info.features
    if key:
        return key
    for candidate in ("image", "hr"):
        if candidate in features and isinstance(features[candidate], tfds.features.Image):
            return candidate
    for name, feature in features.items():
        if isinstance(feature, tfds.features.Image):
            return name
    raise ValueError(f"dataset {builder.name} has no image feature: {features}")


def _tfds_samples(
    name: str,
    split: str,
    image_key: str | None,
    data_dir: str | None,
    seed: int,
    process_index: int,
    process_count: int,
    start: int,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """(k, encoded image bytes) from a TFDS dataset, deterministic in (seed, k)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = tfds.builder(name, data_dir=data_dir)
    key = _tfds_image_key(builder, image_key)
    logging.info(
        "TFDS %s:%s, image feature %r, process %d of %d; images smaller than the "
        "crop are upscaled (tf.print reports each).",
        name,
        split,
        key,
        process_index,
        process_count,
    )
    split = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)
    ds = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        shuffle_files=False,
        decoders={key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1),
    )
    ds = ds.map(lambda ex: ex[key])
    ds = ds.shuffle(
        shuffle_buffer, seed=seed * 1_000_003 + process_index, reshuffle_each_iteration=True
    ).repeat()
    # Skipping before decoding keeps a resume at step s cheap-ish (no image decoding).
    return ds.enumerate().skip(start)


def create_train_dataset(
    data_config,
    *,
    local_batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tf.data.Dataset:
    """The training dataset of one process.

    Args:
      data_config: `config.data` (`source`, `crop_size`, ...; see `train/configs/common.py`).
      local_batch_size: examples per batch on this process.
      seed: data seed.
      start_step: first step to produce (resuming at `start_step` is exact, see module doc).
      process_index: this process; defaults to `jax.process_index()`.
      process_count: number of processes; defaults to `jax.process_count()`.

    Returns:
      A dataset of float32 batches `[local_batch_size, crop, crop, 3]` in [0, 1].
    """
    import jax  # pylint: disable=g-import-not-at-top

    hide_accelerators_from_tf()
    if process_index is None:
        process_index = jax.process_index()
    if process_count is None:
        process_count = jax.process_count()
    crop = int(data_config.crop_size)
    start = int(start_step) * int(local_batch_size)
    source = data_config.source

    if source.startswith("tfds:"):
        spec = source[len("tfds:") :]
        name, _, split = spec.partition(":")
        samples = _tfds_samples(
            name,
            split or "train",
            data_config.get("tfds_image_key"),
            data_config.get("tfds_data_dir"),
            seed,
            process_index,
            process_count,
            start,
            int(data_config.shuffle_buffer),
        )
    else:
        root = resolve_path(source)
        files = list_image_files(root)[process_index::process_count]
        if not files:
            raise ValueError(f"process {process_index} of {process_count} got no files from {root}")
        if data_config.scan != "none":
            files = scan_files(files, crop, full=data_config.scan == "full")
        logging.info(
            "Process %d of %d: %d training images from %s", process_index, process_count, len(files), root
        )
        samples = _folder_samples(files, seed, process_index, start)

    def load(k, encoded):
        return _random_crop_flip(_decode(encoded), _sample_seed(seed, process_index, k), crop)

    ds = samples.map(
        load, num_parallel_calls=data_config.get("num_parallel_calls") or tf.data.AUTOTUNE, deterministic=True
    )
    # A file that passed the scan but cannot be decoded is dropped with a warning, not fatal.
    ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(local_batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = int(data_config.get("num_threads") or 0)
    ds = ds.with_options(options)
    return ds.prefetch(int(data_config.get("prefetch") or tf.data.AUTOTUNE))


def create_train_iterator(data_config, **kwargs) -> Iterator[np.ndarray]:
    """Numpy batches of `create_train_dataset` (same arguments)."""
    return create_train_dataset(data_config, **kwargs).as_numpy_iterator()


def load_eval_images(data_config) -> list[np.ndarray]:
    """A few validation images (Kodak by default) as float32 [H, W, 3] in [0, 1].

    Images are center-cropped to `data.eval_crop` (if set) and to a multiple of 64 so every
    model's down-sampling divides them. Returns [] (with a log line) if the folder is missing.
    """
    from PIL import Image  # pylint: disable=g-import-not-at-top

    if not data_config.get("eval_dir") or not data_config.get("num_eval_images"):
        return []
    root = resolve_path(data_config.eval_dir)
    try:
        files = list_image_files(root)[: int(data_config.num_eval_images)]
    except FileNotFoundError as e:
        logging.warning("Validation skipped: %s", e)
        return []
    images = []
    for path in files:
        try:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"), np.float32) / 255.0
        except Exception as e:  # pylint: disable=broad-except
            logging.warning("Skipping unreadable validation image %s: %s", path, e)
            continue
        h, w = img.shape[:2]
        ch, cw = h, w
        if data_config.get("eval_crop"):
            ch, cw = min(h, data_config.eval_crop), min(w, data_config.eval_crop)
        ch, cw = ch // 64 * 64, cw // 64 * 64
        if ch == 0 or cw == 0:
            logging.warning("Skipping validation image %s: smaller than 64 px", path)
            continue
        top, left = (h - ch) // 2, (w - cw) // 2
        images.append(np.ascontiguousarray(img[top : top + ch, left : left + cw]))
    logging.info("Validation on %d images from %s", len(images), root)
    return images
