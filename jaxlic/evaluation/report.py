"""A visual report of ``jaxlic eval``: crops of every image as each codec decoded it, and the RD plots.

Numbers say how far apart two codecs are; pictures say what the difference looks like (blur,
ringing, blocks, lost texture). ``jaxlic eval ... --report DIR`` writes ``DIR/index.html``, a page
that needs no network (inline CSS, no scripts; images are PNG files next to it): per image, a
crop of the original, of each model's decoded image at the setting nearest ``--report-bpp``, and
of each classical codec at its setting whose file is nearest in size to that model's, with bytes,
bpp, PSNR and MS-SSIM of the whole image under each (a codec's size also relative to the model's:
a codec that cannot come near the model's size shows it); the RD plots (``rd_psnr.png``,
``rd_ms-ssim.png``) come first, the matched-rate table, when there is one, last.

The pictures are the decodes the evaluation itself made (:func:`jaxlic.evaluation.rd.evaluate`
hands each one to :meth:`Report.add` before dropping it): no second encoder path, and only the
crops that can still be shown are kept in memory. The crop is the window of the original with the
most detail (the largest sum of absolute luma differences between neighbours), where coding
artefacts show first; crops are drawn at 2x with pixelated scaling so that artefacts stay visible.
"""

from __future__ import annotations

import html
import os
import shutil

import numpy as np

CROP = 160
ZOOM = 2
THUMB_WIDTH = 256

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 6px; }
p.meta { color: #555; margin: 0 0 12px; }
section.image { border-top: 1px solid #ddd; padding-top: 4px; }
div.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; margin: 6px 0 12px; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 4px; }
figure.crop img { width: %(px)dpx; height: %(px)dpx; image-rendering: pixelated; display: block; }
figure.thumb img { width: %(thumb)dpx; display: block; }
figure.ours { border-color: #1f77b4; border-width: 2px; }
figcaption { font-size: 12px; width: %(px)dpx; margin-top: 3px; }
figure.thumb figcaption { width: %(thumb)dpx; }
figcaption b { display: block; font-size: 13px; }
div.plots img { max-width: 48%%; min-width: 420px; border: 1px solid #ddd; background: #fff; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; font-size: 12px; overflow-x: auto; }
"""


def detail_window(img: np.ndarray, size: int = CROP) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the ``size`` x ``size`` window with the most detail.

    Args:
      img: ``uint8 [H, W, 3]``.
      size: window side (smaller images give their whole extent).

    Returns:
      The window, on a grid of ``size / 4`` pixels (ties: the first in raster order).
    """
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    luma = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = np.zeros((h, w))
    energy[:, 1:] += np.abs(np.diff(luma, axis=1))
    energy[1:, :] += np.abs(np.diff(luma, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(size // 4, 1)
    best, where = -1.0, (0, 0)
    for i in range(0, h - ch + 1, step):
        for j in range(0, w - cw + 1, step):
            s = integral[i + ch, j + cw] - integral[i, j + cw] - integral[i + ch, j] + integral[i, j]
            if s > best:
                best, where = s, (i, j)
    return where[0], where[1], ch, cw


def _label(name: str, quality) -> str:
    q = f"{quality:.3g}" if isinstance(quality, float) else str(quality)
    return f"{name} q{q}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


class Report:
    """Collects crops while ``rd.evaluate`` runs, then writes the page.

    Args:
      out_dir: folder of ``index.html`` (created; its ``crops/`` are rewritten).
      target_bpp: each model's setting shown is, per image, the one nearest this rate.
      crop: crop side in pixels.
    """

    def __init__(self, out_dir, target_bpp: float = 0.15, crop: int = CROP):
        self.out_dir = os.fspath(out_dir)
        self.target_bpp = float(target_bpp)
        self.crop = int(crop)
        self.images: dict[str, dict] = {}  # image name -> {"box", "original", "thumb", "shape"}
        self.ours: dict[tuple[str, str], dict] = {}  # (image, model) -> entry
        self.theirs: dict[tuple[str, str, str], dict] = {}  # (image, model, codec) -> entry

    def add(self, row: dict, img: np.ndarray, recon: np.ndarray) -> None:
        """One decode of the evaluation: ``row`` is its per-image record (``image``, ``kind``,
        ``name``, ``quality``, ``bpp``, ``psnr``, ``ms_ssim``, ``size_bytes``).

        The evaluation gives an image's model decodes before its classical ones (as
        ``rd.evaluate`` does), so that each codec setting is compared with the model's chosen one.
        """
        image = row["image"]
        if image not in self.images:
            box = detail_window(img, self.crop)
            self.images[image] = {"box": box, "original": self._cut(img, box), "shape": img.shape[:2]}
            self.images[image]["thumb"] = self._thumbnail(img, box)
        entry = {
            "label": _label(row["name"], row["quality"]),
            "crop": self._cut(recon, self.images[image]["box"]),
            **{k: row.get(k) for k in ("bpp", "psnr", "ms_ssim", "size_bytes")},
        }
        if row["kind"] == "model":
            key = (image, row["name"])
            old = self.ours.get(key)
            if old is None or abs(entry["bpp"] - self.target_bpp) < abs(old["bpp"] - self.target_bpp):
                self.ours[key] = entry
            return
        for (im, model), ours in self.ours.items():
            if im != image:
                continue
            key = (image, model, row["name"])
            old = self.theirs.get(key)
            if old is None or abs(entry["size_bytes"] - ours["size_bytes"]) < abs(
                old["size_bytes"] - ours["size_bytes"]
            ):
                self.theirs[key] = entry

    @staticmethod
    def _cut(img: np.ndarray, box) -> np.ndarray:
        i, j, h, w = box
        return np.ascontiguousarray(np.asarray(img)[i : i + h, j : j + w])

    @staticmethod
    def _thumbnail(img: np.ndarray, box):
        from PIL import Image, ImageDraw

        im = Image.fromarray(np.asarray(img))
        scale = THUMB_WIDTH / im.width
        thumb = im.resize((THUMB_WIDTH, max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
        i, j, h, w = box
        ImageDraw.Draw(thumb).rectangle(
            [j * scale, i * scale, (j + w) * scale - 1, (i + h) * scale - 1], outline=(255, 40, 40), width=2
        )
        return np.asarray(thumb)

    # ------------------------------------------------------------------------------------------
    # writing

    def _save(self, rel: str, array: np.ndarray) -> str:
        from PIL import Image

        path = os.path.join(self.out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(array).save(path)
        return rel

    def _figure(self, rel: str, entry: dict | None, css: str, title: str, ours: dict | None = None) -> str:
        if entry is None:
            caption = f"<b>{html.escape(title)}</b>original"
        else:
            ms = entry["ms_ssim"]
            size = f"{entry['size_bytes']} bytes"
            if ours is not None and ours["size_bytes"]:
                size += f" ({entry['size_bytes'] / ours['size_bytes'] - 1:+.0%} vs. ours)"
            caption = (
                f"<b>{html.escape(title)}</b>{size}, {entry['bpp']:.4f} bpp<br>"
                f"PSNR {entry['psnr']:.2f} dB, MS-SSIM " + ("n/a" if ms is None or ms != ms else f"{ms:.4f}")
            )
        return (
            f'<figure class="{css}"><img src="{html.escape(rel)}" alt="{html.escape(title)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )

    def write(
        self,
        plots: list[str] = (),
        title: str = "jaxlic evaluation",
        table: str | None = None,
        notes: list[str] = (),
    ) -> str:
        """Writes ``index.html``, the crops and copies of ``plots`` into the folder.

        Args:
          plots: RD plot files to show (copied next to the page).
          title: the page's heading.
          table: a plain-text table to show (the matched-rate comparison).
          notes: lines to show under the heading.

        Returns:
          The path of ``index.html``.
        """
        os.makedirs(self.out_dir, exist_ok=True)
        shutil.rmtree(os.path.join(self.out_dir, "crops"), ignore_errors=True)
        zoom = self.crop * ZOOM
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS % {'px': zoom, 'thumb': THUMB_WIDTH}}</style>",
            "</head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">Crops of {self.crop}x{self.crop} pixels (shown at {ZOOM}x) where each image has '
            f"the most detail. Each model at its setting nearest {self.target_bpp:g} bpp; each classical "
            "codec at its setting whose file is nearest in size to the model's. Bytes, bpp, PSNR and "
            "MS-SSIM are of the whole image.</p>",
        ]
        parts += [f'<p class="meta">{html.escape(n)}</p>' for n in notes]
        shown_plots = []
        for plot in plots:
            if os.path.isfile(plot):
                name = os.path.basename(plot)
                if os.path.abspath(plot) != os.path.abspath(os.path.join(self.out_dir, name)):
                    shutil.copyfile(plot, os.path.join(self.out_dir, name))
                shown_plots.append(name)
        if shown_plots:
            parts.append('<section class="rd"><h2>Rate-distortion curves</h2><div class="plots">')
            parts += [f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in shown_plots]
            parts.append("</div></section>")
        models = sorted({m for _, m in self.ours})
        for image, info in self.images.items():
            slug = _slug(os.path.splitext(image)[0])
            h, w = info["shape"]
            i, j, ch, cw = info["box"]
            parts.append(f'<section class="image" id="{html.escape(slug)}">')
            parts.append(f"<h2>{html.escape(image)} <small>({w}x{h}, crop at x={j}, y={i})</small></h2>")
            original = self._save(f"crops/{slug}/original.png", info["original"])
            thumb = self._save(f"crops/{slug}/thumbnail.png", info["thumb"])
            for model in models:
                ours = self.ours.get((image, model))
                if ours is None:
                    continue
                row = [
                    f'<figure class="thumb"><img src="{html.escape(thumb)}" alt="{html.escape(image)}">'
                    f"<figcaption>{w}x{h}, crop outlined</figcaption></figure>",
                    self._figure(original, None, "crop original", image),
                    self._figure(
                        self._save(f"crops/{slug}/{_slug(ours['label'])}.png", ours["crop"]),
                        ours,
                        "crop ours",
                        ours["label"],
                    ),
                ]
                for (im, m, _), theirs in sorted(self.theirs.items(), key=lambda kv: kv[0]):
                    if im == image and m == model:
                        rel = self._save(
                            f"crops/{slug}/{_slug(model)}-vs-{_slug(theirs['label'])}.png", theirs["crop"]
                        )
                        row.append(self._figure(rel, theirs, "crop theirs", theirs["label"], ours))
                parts.append(f'<div class="row" data-model="{html.escape(model)}">{"".join(row)}</div>')
            parts.append("</section>")
        if table:
            parts.append(
                '<section class="table"><details open><summary><b>Per image at matched rate</b></summary>'
                f"<pre>{html.escape(table)}</pre></details></section>"
            )
        parts.append("</body></html>")
        path = os.path.join(self.out_dir, "index.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(parts) + "\n")
        return path
