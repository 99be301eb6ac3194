"""Where training images come from: this process's records, as a random-access source.

* a local folder of JPEG/PNG images, searched recursively (the default is the repository's
  `../shared/data/train`): `FileSource`, after an up-front header scan (`data.scan`) that drops
  unreadable files with a warning; or
* a TensorFlow Datasets dataset, given as ``tfds:NAME[:SPLIT]`` (for example ``tfds:clic``),
  read by random access through ``tfds.data_source`` (needs ``pip install 'jaxlic[tfds]'`` and a
  dataset prepared in the array_record format; the image feature is found automatically or set
  with ``data.tfds_image_key``): `ShardSource`.

Each process (``jax.process_index()`` of ``jax.process_count()``) reads its own disjoint shard
of the records (every ``process_count``-th one, starting at its index). `train.input_pipeline`
turns a source into batches.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from absl import logging

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


class DataError(Exception):
    """A data source that is missing, empty, unreadable or needs an uninstalled package."""


def resolve_path(path: str) -> pathlib.Path:
    """Resolves `path` relative to the repository root unless it is absolute."""
    p = pathlib.Path(os.path.expanduser(path))
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def list_image_files(root: str | os.PathLike) -> list[str]:
    """All JPEG/PNG files under `root` (recursive), sorted so every process sees one order."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"no JPEG/PNG images under {root}")
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
    from PIL import Image

    good, small = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                if full:
                    im.load()
                width, height = im.size
        except Exception as e:  # noqa: BLE001
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
        raise DataError("no readable training images")
    return good


# ---------------------------------------------------------------------------------------------
# Sources: random-access sequences of records (encoded bytes or arrays).


class FileSource:
    """Random access to the bytes of image files."""

    def __init__(self, files: Sequence[str]):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> bytes:
        return pathlib.Path(self.files[i]).read_bytes()

    def name(self, i: int) -> str:
        return self.files[i]


class ShardSource:
    """Records `index, index + count, ...` of a random-access source (one process's shard)."""

    def __init__(self, source, index: int, count: int, getter: Callable[[Any], Any] = lambda r: r):
        self.source, self.index, self.count, self.getter = source, index, count, getter
        self._len = max(0, (len(source) - index + count - 1) // count)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int):
        return self.getter(self.source[self.index + i * self.count])

    def name(self, i: int) -> str:
        return f"record {self.index + i * self.count}"


def _tfds_image_key(example: Any, key: str | None) -> str:
    if key:
        return key
    if not isinstance(example, dict):
        raise DataError(
            f"TFDS records are {type(example).__name__}, not feature dicts; set data.tfds_image_key"
        )
    for candidate in ("image", "hr"):
        if candidate in example:
            return candidate
    for name, value in example.items():
        if isinstance(value, bytes) or (isinstance(value, np.ndarray) and value.ndim == 3):
            return name
    raise DataError(f"no image feature among {sorted(example)}; set data.tfds_image_key")


def tfds_source(
    spec: str, image_key: str | None, data_dir: str | None, process_index: int, process_count: int
):
    """This process's shard of `tfds.data_source(NAME, split=SPLIT)` for `spec` = NAME[:SPLIT]."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            f"data.source=tfds:{spec} needs tensorflow-datasets: pip install -e '.[tfds]'"
        ) from None
    name, _, split = spec.partition(":")
    split = split or "train"
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001
        raise DataError(
            f"cannot open TFDS {name}:{split} with tfds.data_source: {e}".splitlines()[0]
        ) from None
    if len(source) == 0:
        raise DataError(f"TFDS {name}:{split} is empty")
    key = _tfds_image_key(source[0], image_key)
    logging.info("TFDS %s:%s (%d records), image feature %r", name, split, len(source), key)
    return ShardSource(source, process_index, process_count, getter=lambda ex: ex[key])


def make_source(data_config, process_index: int, process_count: int):
    """This process's records: files of a folder or a TFDS shard."""
    source = data_config.source
    if source.startswith("tfds:"):
        shard = tfds_source(
            source[len("tfds:") :],
            data_config.get("tfds_image_key"),
            data_config.get("tfds_data_dir"),
            process_index,
            process_count,
        )
        if len(shard) == 0:
            raise DataError(f"process {process_index} of {process_count} got no records from {source}")
        return shard
    root = resolve_path(source)
    files = list_image_files(root)[process_index::process_count]
    if not files:
        raise DataError(f"process {process_index} of {process_count} got no files from {root}")
    if data_config.get("scan", "header") != "none":
        files = scan_files(files, int(data_config.crop_size), full=data_config.scan == "full")
    logging.info(
        "Process %d of %d: %d training images from %s", process_index, process_count, len(files), root
    )
    return FileSource(files)
