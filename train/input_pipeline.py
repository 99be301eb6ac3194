"""Grain input pipeline for training learned image codecs (no TensorFlow needed).

Training data are random square crops (default 256 px) with random horizontal flips of the
records of a source (`train.data_sources`: a folder of JPEG/PNG images or a TFDS dataset); each
process yields its *local* part of the global batch.

Determinism and exact resume
----------------------------
Every sample is a pure function of ``(seed, process, k)`` where ``k`` is the process-local
sample counter; batch ``step`` holds samples ``k = step * local_batch ... + local_batch - 1``.
Sample ``k`` is record ``perm_e[k mod n]`` of this process's shard, where ``perm_e`` is a
pseudo-random permutation seeded by ``(seed, process, e)`` for epoch ``e = k // n``: every
epoch visits every record once in a fresh order. Crop offsets and flips of sample ``k`` come
from a numpy generator seeded by ``(seed, process, k)``. Grain reads samples by index
(``grain.MapDataset.range(start_step, ...)``, one element per batch), so starting at step ``s``
is O(1) and a run resumed at step ``s`` sees exactly the batches an uninterrupted run sees,
whatever the number of threads or worker processes.

Unreadable files found by the up-front header scan (``data.scan``) are dropped with a warning.
A record that passes the scan but fails to decode later (a truncated JPEG, say) is logged once
and replaced by the next record of the same epoch's order, so the order stays a pure function of
``(seed, step)`` even then. Images smaller than the crop are upscaled (bilinear) so their short
side equals the crop size.

Parallelism: ``data.num_threads`` reader threads (0: one per CPU core, at most 16; image
decoding releases the GIL) and ``data.num_workers`` worker processes (0: none, read in the
training process; more help only when decoding outruns the threads of one process).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from absl import logging

from train.data_sources import DataError, list_image_files, make_source, resolve_path

# Steps run over [start_step, start_step + _SPAN): far more than any run takes.
_SPAN = 1 << 48


def hide_accelerators_from_tf() -> None:
    """Kept for callers of the tf.data pipeline: TF is no longer used, so nothing to hide."""


def default_num_threads() -> int:
    """One reader thread per CPU core available to this process, at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


# ---------------------------------------------------------------------------------------------
# Decoding and augmentation (numpy + Pillow).


def decode_image(data: Any) -> np.ndarray:
    """Encoded bytes (JPEG/PNG/...) or an image array -> uint8 [H, W, 3]."""
    if isinstance(data, np.ndarray):
        img = data
    else:
        from PIL import Image

        with Image.open(io.BytesIO(bytes(data))) as im:
            img = np.asarray(im.convert("RGB"))
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] < 3:
        raise ValueError(f"not an RGB image: shape {img.shape}")
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def upscale_to(img: np.ndarray, crop: int) -> np.ndarray:
    """Upscales `img` (bilinear) so that its short side is `crop`; larger images are unchanged."""
    h, w = img.shape[:2]
    short = min(h, w)
    if short >= crop:
        return img
    from PIL import Image

    scale = crop / short
    size = (max(crop, int(np.ceil(w * scale))), max(crop, int(np.ceil(h * scale))))
    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


def random_crop_flip(img: np.ndarray, rng: np.random.Generator, crop: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [crop, crop, 3]: a uniformly placed crop, flipped with p = 1/2."""
    img = upscale_to(img, crop)
    h, w = img.shape[:2]
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    out = img[top : top + crop, left : left + crop]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------------------------------------
# Samples and batches.


class Sampler:
    """Sample counter k -> uint8 crop [crop, crop, 3]; a pure function of (seed, process, k)."""

    def __init__(self, source, seed: int, process_index: int, crop: int):
        self.source, self.seed, self.process_index, self.crop = source, int(seed), int(process_index), crop
        self.n = len(source)
        self._bad: set[int] = set()
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for grain's worker processes
        state = dict(self.__dict__)
        state.update(_perms={}, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of this shard's records in `epoch` (a few recent epochs are cached)."""
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, self.process_index, 0x5EED, epoch]).permutation(self.n)
            with self._lock:
                if len(self._perms) >= 4:
                    self._perms.pop(min(self._perms))
                self._perms[epoch] = perm
        return perm

    def _crop(self, idx: int, k: int) -> np.ndarray | None:
        """Crop of record `idx` for sample `k`, or None (logged once) if the record is unreadable."""
        if idx in self._bad:
            return None
        rng = np.random.default_rng([self.seed, self.process_index, k])
        try:
            data = self.source[idx]
            if isinstance(data, np.ndarray):
                return random_crop_flip(decode_image(data), rng, self.crop)
            from PIL import Image

            with Image.open(io.BytesIO(bytes(data))) as im:
                w, h = im.size
                if min(w, h) < self.crop:
                    return random_crop_flip(decode_image(data), rng, self.crop)
                # Same draws as random_crop_flip, but only the crop is converted to RGB and copied.
                top = int(rng.integers(0, h - self.crop + 1))
                left = int(rng.integers(0, w - self.crop + 1))
                out = np.asarray(im.crop((left, top, left + self.crop, top + self.crop)).convert("RGB"))
            if rng.random() < 0.5:
                out = out[:, ::-1]
            return np.ascontiguousarray(out)
        except Exception as e:  # noqa: BLE001
            with self._lock:
                new = idx not in self._bad
                self._bad.add(idx)
            if new:
                name = self.source.name(idx) if hasattr(self.source, "name") else f"record {idx}"
                logging.warning("Skipping unreadable image %s: %s", name, e)
            return None

    def __call__(self, k: int) -> np.ndarray:
        k = int(k)
        epoch, pos = divmod(k, self.n)
        perm = self.permutation(epoch)
        for j in range(self.n):  # an unreadable record is replaced by the next one of the epoch
            out = self._crop(int(perm[(pos + j) % self.n]), k)
            if out is not None:
                return out
        raise DataError("no readable training images")


class BatchSampler:
    """Step -> float32 batch [local_batch, crop, crop, 3] in [0, 1] of samples step * local_batch + i."""

    def __init__(self, sampler: Sampler, local_batch_size: int):
        self.sampler, self.local_batch_size = sampler, int(local_batch_size)

    def __call__(self, step: int) -> np.ndarray:
        k0 = int(step) * self.local_batch_size
        batch = np.stack([self.sampler(k0 + i) for i in range(self.local_batch_size)])
        return batch.astype(np.float32) / np.float32(255)


def create_train_dataset(
    data_config,
    *,
    local_batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
):
    """The training dataset of one process, a `grain.IterDataset`.

    Args:
      data_config: `config.data` (`source`, `crop_size`, ...; see `train/configs/common.py`).
      local_batch_size: examples per batch on this process.
      seed: data seed.
      start_step: first step to produce (resuming at `start_step` is exact, see module doc).
      process_index: this process; defaults to `jax.process_index()`.
      process_count: number of processes; defaults to `jax.process_count()`.

    Returns:
      An iterable dataset of float32 batches `[local_batch_size, crop, crop, 3]` in [0, 1].
    """
    import grain

    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    crop = int(data_config.crop_size)
    sampler = Sampler(make_source(data_config, process_index, process_count), seed, process_index, crop)
    threads = int(data_config.get("num_threads") or 0) or default_num_threads()
    prefetch = max(1, int(data_config.get("prefetch") or 2))
    workers = int(data_config.get("num_workers") or 0)

    # One element per step: threads (and worker processes) each build whole batches, and
    # grain hands them back in step order, so the batches never depend on the parallelism.
    ds = grain.MapDataset.range(int(start_step), int(start_step) + _SPAN).map(
        BatchSampler(sampler, local_batch_size)
    )
    ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(threads, prefetch))
    )
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (unparsed outside app.run)
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch)
        )
    return ds


def create_train_iterator(data_config, **kwargs) -> Iterator[np.ndarray]:
    """Numpy batches of `create_train_dataset` (same arguments)."""
    return iter(create_train_dataset(data_config, **kwargs))


def load_eval_images(data_config) -> list[np.ndarray]:
    """A few validation images (Kodak by default) as float32 [H, W, 3] in [0, 1].

    Images are center-cropped to `data.eval_crop` (if set) and to a multiple of 64 so every
    model's down-sampling divides them. Returns [] (with a log line) if the folder is missing.
    """
    from PIL import Image

    if not data_config.get("eval_dir") or not data_config.get("num_eval_images"):
        return []
    root = resolve_path(data_config.eval_dir)
    try:
        files = list_image_files(root)[: int(data_config.num_eval_images)]
    except DataError as e:
        logging.warning("Validation skipped: %s", e)
        return []
    images = []
    for path in files:
        try:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"), np.float32) / 255.0
        except Exception as e:  # noqa: BLE001
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
