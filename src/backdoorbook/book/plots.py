"""One plotting style for the whole book, and the figure helpers chapters share.

Call :func:`set_style` once per chapter. Helpers return the matplotlib ``Figure`` so
notebooks display it (and can save it) without further code.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

PALETTE = "colorblind"


def set_style() -> None:
    """Seaborn's ``whitegrid`` with a colour-blind palette, readable fonts and crisp figures."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "figure.autolayout": False,
            "axes.titlesize": "medium",
            "image.interpolation": "nearest",
        }
    )


def _as_hwc(image) -> np.ndarray:
    """A [C, H, W] float tensor in [0, 1], or an [H, W, C] / [H, W] array, as an array for
    imshow."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3:
            image = image.permute(1, 2, 0)
        image = image.clamp(0, 1).numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"cannot show an image of shape {image.shape}")
    return image


def image_grid(
    images: Sequence,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cell_size: float = 1.4,
    suptitle: str | None = None,
    row_labels: Sequence[str] | None = None,
    cmap: str | None = None,
):
    """Show ``images`` (float [C, H, W] tensors in [0, 1], or uint8/float arrays) in a grid.

    ``row_labels`` names each row (left margin); ``titles`` names each image.
    """
    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell_size * ncols, cell_size * nrows + (0.4 if suptitle else 0)),
        squeeze=False,
    )
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if index >= len(images):
            ax.axis("off")
            continue
        image = _as_hwc(images[index])
        ax.imshow(image, cmap=cmap or ("gray" if image.ndim == 2 else None))
        if titles is not None:
            ax.set_title(titles[index], fontsize="small")
    if row_labels is not None:
        for row, label in zip(axes[:, 0], row_labels):
            row.set_ylabel(label, fontsize="small")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def heatmap(
    matrix,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    fmt: str = ".1f",
    vmin: float | None = 0,
    vmax: float | None = 100,
    cmap: str = "rocket_r",
    xlabel: str = "",
    ylabel: str = "",
    ax=None,
):
    """An annotated heat map of ``matrix`` ``[rows, cols]`` (e.g. success rates in percent)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix shape {matrix.shape} does not match "
            f"{len(row_labels)} x {len(col_labels)} labels"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.75 * len(col_labels), 0.8 + 0.5 * len(row_labels)))
    sns.heatmap(
        matrix,
        annot=True,
        fmt=fmt,
        vmin=vmin,
        vmax=vmax,
        cmap=cmap,
        xticklabels=col_labels,
        yticklabels=row_labels,
        cbar=True,
        ax=ax,
        linewidths=0.5,
    )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.figure.tight_layout()
    return ax.figure


def mask_overlay(
    image, mask, colour: tuple[float, float, float] = (1.0, 0.1, 0.1), alpha: float = 0.5
) -> np.ndarray:
    """Blend a binary ``mask`` [H, W] over ``image`` in ``colour``; returns a float [H, W, 3]
    array."""
    image = _as_hwc(image).astype(float)
    if image.max() > 1:
        image = image / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    out = image.copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour)
    return out


def colourise_labels(mask, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """A class-id map [H, W] as an RGB float array, one palette colour per class, ignore pixels
    black."""
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    palette = np.asarray(sns.color_palette("tab20", num_classes))
    out = np.zeros(mask.shape + (3,))
    valid = (mask != ignore_index) if ignore_index is not None else np.ones(mask.shape, bool)
    if (mask[valid] >= num_classes).any() or (mask[valid] < 0).any():
        raise ValueError(
            f"label map has ids outside [0, {num_classes}) other than the ignore index"
        )
    out[valid] = palette[mask[valid]]
    return out
