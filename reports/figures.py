"""Small PNG figures (matplotlib, Agg backend): robustness curves, confusion matrices, training curves, linf_to_ref.

Each function writes one PNG and returns its path. Random-start cells follow the seed policy of
:mod:`reports.summary` (lowest seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from advparity.reports.schema import REFERENCE, check_results, library_label, ordered_libraries  # noqa: E402
from advparity.reports.summary import cell_summary  # noqa: E402
from advparity.reports.tables import confusion_at  # noqa: E402

DPI = 90
# Distinct markers and dash patterns: the curves of agreeing libraries lie on top of each other, and
# the reader must still see that all four are there.
STYLES: dict[str, tuple[str, str]] = {
    "reference": ("o", "-"),
    "art": ("s", "--"),
    "torchattacks": ("^", "-."),
    "foolbox": ("x", ":"),
}


# Which eps ticks to label first on a crowded log axis: the ends, then the roundest mantissas.
_MANTISSA_RANK: tuple[float, ...] = (1, 5, 2, 3, 2.5, 4, 6, 8, 7, 9)


def tick_labels(grid: np.ndarray, min_gap_decades: float = 0.15) -> list[str]:
    """A label for each eps tick (sorted ascending), blank where it would crowd a label already placed on
    the log axis: the FGSM sweep 0.1…0.9/255 is dense. The ends are labelled first, then round values."""

    def rank(i: int) -> tuple[int, float]:
        if i in (0, len(grid) - 1):
            return (-1, 0.0)
        mantissa = round(float(grid[i]) / 10 ** math.floor(math.log10(grid[i])), 6)
        return (
            _MANTISSA_RANK.index(mantissa) if mantissa in _MANTISSA_RANK else len(_MANTISSA_RANK),
            float(grid[i]),
        )

    placed: list[float] = []
    labels = [""] * len(grid)
    for i in sorted(range(len(grid)), key=rank):
        position = math.log10(grid[i])
        if all(abs(position - p) >= min_gap_decades for p in placed):
            placed.append(position)
            labels[i] = f"{grid[i]:.3g}"
    return labels


def robustness_curves(results: pd.DataFrame, out_path: str | Path) -> Path:
    """Accuracy vs eps (log x), one panel per attack variant, one line per library, Clopper-Pearson 95 % CI shaded."""
    cells = cell_summary(results)
    labels = list(dict.fromkeys(cells["attack_label"]))
    fig, axes = plt.subplots(
        1, len(labels), figsize=(4.2 * len(labels), 3.4), squeeze=False, constrained_layout=True
    )
    for ax, label in zip(axes[0], labels, strict=True):
        panel = cells[cells["attack_label"] == label]
        for library in ordered_libraries(panel["library"]):
            curve = panel[panel["library"] == library].sort_values("eps")
            x = curve["eps"].to_numpy() * 255
            marker, dash = STYLES.get(library, ("d", "-"))
            ax.plot(
                x, 100 * curve["acc"], marker=marker, linestyle=dash, label=library_label(library), alpha=0.85
            )
            ax.fill_between(x, 100 * curve["cp_low"], 100 * curve["cp_high"], alpha=0.12)
        ax.set_xscale("log")
        grid = np.unique(panel["eps"].to_numpy() * 255)
        ax.set_xticks(grid, tick_labels(grid), fontsize=7)
        ax.minorticks_off()
        ax.set(xlabel="eps (× 1/255)", ylabel="accuracy (%)", title=label, ylim=(-2, 102))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _save(fig, out_path)


def confusion_matrices(
    results: pd.DataFrame, classes: Sequence[str], eps: float, out_path: str | Path
) -> Path:
    """Confusion matrices (counts, rows true) at ``eps``: clean, then each library × attack variant."""
    matrices = confusion_at(results, classes, eps)
    # One row per library, one column per attack variant, clean first: the same attack lines up
    # down a column, so libraries are compared at a glance.
    attacked = {name: m for name, m in matrices.items() if name != "clean"}
    libraries = list(dict.fromkeys(name.split(" ", 1)[0] for name in attacked))
    variants = list(dict.fromkeys(name.split(" ", 1)[1] for name in attacked))
    rows, cols = max(1, len(libraries)), 1 + len(variants)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.7 * cols, 2.6 * rows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat:
        ax.axis("off")
    _draw_confusion(axes[0][0], matrices["clean"], "clean", classes)
    for name, matrix in attacked.items():
        library, variant = name.split(" ", 1)
        _draw_confusion(axes[libraries.index(library)][1 + variants.index(variant)], matrix, name, classes)
    return _save(fig, out_path)


def _draw_confusion(ax: plt.Axes, matrix: pd.DataFrame, title: str, classes: Sequence[str]) -> None:
    ax.axis("on")
    values = matrix.to_numpy()
    top = max(1, int(values.max()))
    ax.imshow(values, cmap="Blues", vmin=0, vmax=top)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")
    short = [c[:8] for c in classes]
    ax.set_xticks(range(len(classes)), short, rotation=45, fontsize=6)
    ax.set_yticks(range(len(classes)), short, fontsize=6)
    ax.set_title(title, fontsize=8)


def training_curves(history_csv: str | Path, out_path: str | Path) -> Path:
    """Loss and accuracy per epoch, train vs validation, from ``model.train.save_history``'s ``history.csv``."""
    history = pd.read_csv(history_csv)
    needed = ["epoch", "train_loss", "val_loss", "train_acc", "val_acc"]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise ValueError(f"expected {history_csv} to have columns {needed}, missing {missing}")
    return plot_history(history, out_path)


def plot_history(history: pd.DataFrame, path: str | Path) -> Path:
    """Loss and accuracy per epoch, train vs validation, as a PNG: the picture training writes next to the
    checkpoint (``harness/pipeline.py``) and the report shows."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for column, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(history["epoch"], history[column], marker="o", label=label)
    for column, label in (("train_acc", "train"), ("val_acc", "validation")):
        ax_acc.plot(history["epoch"], 100 * history[column], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def linf_to_ref_histogram(results: pd.DataFrame, out_path: str | Path) -> Path:
    """Histogram of each library's L∞ distance to the reference's x_adv, in units of eps (0, 1 and 2 are the telling values)."""
    frame = check_results(results)
    frame = frame[(frame["library"] != REFERENCE) & frame["linf_to_ref"].notna()]
    fig, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    if frame.empty:
        ax.text(0.5, 0.5, "no library rows with a reference to compare", ha="center", va="center")
        ax.axis("off")
        return _save(fig, out_path)
    bins = [float(b) for b in np.linspace(0, 2.1, 22)]
    libraries = ordered_libraries(frame["library"])
    ratios = [
        np.clip(
            frame.loc[frame["library"] == lib, "linf_to_ref"] / frame.loc[frame["library"] == lib, "eps"],
            0,
            2.1,
        )
        for lib in libraries
    ]
    # Side-by-side bars: agreeing libraries have identical counts, and overlaid outlines would hide all but one.
    ax.hist(ratios, bins=bins, label=[library_label(lib) for lib in libraries])
    ax.set_yscale("log")
    ax.set(xlabel="linf_to_ref / eps", ylabel="samples", title="distance to the reference's x_adv")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_path)


def make_figures(
    results: pd.DataFrame,
    classes: Sequence[str],
    eps: float,
    out_dir: str | Path,
    history_csv: str | Path | None = None,
) -> dict[str, Path]:
    """Every figure into ``out_dir``: ``robustness``, ``confusion``, ``linf_to_ref`` and ``training`` (if a history is given)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "robustness": robustness_curves(results, out / "robustness_curves.png"),
        "confusion": confusion_matrices(results, classes, eps, out / "confusion_matrices.png"),
        "linf_to_ref": linf_to_ref_histogram(results, out / "linf_to_ref.png"),
    }
    if history_csv is not None:
        paths["training"] = training_curves(history_csv, out / "training_curves.png")
    return paths


def _save(fig: plt.Figure, out_path: str | Path) -> Path:
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
