"""Rate-distortion plots of CompressAI-format curves (ours, classical codecs, published anchors).

Uses matplotlib's object API with the Agg canvas, so it never touches the global backend and
works headless.
"""

from __future__ import annotations

import glob
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxlic.evaluation.bdrate import RDCurveError, curve_points, load_rd_json

_YLABELS = {"psnr-rgb": "PSNR RGB [dB]", "ms-ssim-db": "MS-SSIM [dB]", "ms-ssim": "MS-SSIM"}


def load_anchor_dir(directory, metric: str = "psnr-rgb") -> list[dict]:
    """All CompressAI-format JSONs in a folder that carry ``metric`` (others are skipped)."""
    curves = []
    for path in sorted(glob.glob(os.path.join(os.fspath(directory), "*.json"))):
        try:
            curve = load_rd_json(path)
            curve_points(curve, metric)
        except RDCurveError:
            continue
        if any(c["name"] == curve["name"] for c in curves):
            curve["name"] = f"{curve['name']} [{os.path.splitext(os.path.basename(path))[0]}]"
        curves.append(curve)
    return curves


def plot_rd(
    curves: list[dict],
    path,
    metric: str = "psnr-rgb",
    anchors: list[dict] = (),
    title: str | None = None,
    max_bpp: float | None = 2.0,
) -> None:
    """Draws quality against bpp for every curve and writes a PNG.

    Args:
        curves: our results (solid lines with markers).
        path: output PNG file.
        metric: ``"psnr-rgb"``, ``"ms-ssim-db"`` or ``"ms-ssim"``.
        anchors: published curves (dashed, thinner).
        title: figure title.
        max_bpp: clip the x axis (``None``: automatic).
    """
    fig = Figure(figsize=(10.5, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for style, group in (("-o", curves), ("--", anchors)):
        for curve in group:
            try:
                bpp, values = curve_points(curve, metric)
            except RDCurveError:
                continue
            if bpp.size == 0:
                continue
            ax.plot(
                bpp,
                values,
                style,
                markersize=4,
                linewidth=1.8 if style == "-o" else 1.0,
                alpha=1.0 if style == "-o" else 0.7,
                label=str(curve.get("name", "?")),
            )
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(_YLABELS.get(metric, metric))
    if max_bpp is not None:
        ax.set_xlim(0, max_bpp)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
