"""The low-rank evidence: singular-value spectra and effective ranks of what LRRNet builds.

The paper's claim is that the network learns a low-rank background. This module measures
it on frames: for each frame it takes the singular values of

- the input frame ``x`` (``H×W``);
- the reconstruction ``D`` (``H×W``);
- the background feature ``B`` (``C×H×W``), per channel (``C`` matrices ``H×W``) and
  unfolded (one ``H×(C·W)`` matrix: every channel's columns side by side);
- for comparison, the shallow feature ``u`` unfolded the same way (the encoder's first
  feature, before the bottleneck: what ``B`` is subtracted from).

The **effective rank** at energy e is the smallest k whose k largest singular values hold
a fraction e of the energy Σσᵢ² (e = 0.99 by default). A matrix is as low-rank as k is
small next to its full rank min(rows, columns); the table gives both. On raw intensities
the mean level (a rank-1 term) holds most of the energy of a bright frame; ``center``
subtracts each matrix's mean first (each channel's, for the features), so that the rank
counts the structure around it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lrrnet.models import LRRNet, crop_to, pad_to_multiple
from lrrnet.visualize import save_figure

ENERGY = 0.99
# Name of each measured quantity, in table order.
QUANTITIES = (
    "input x",
    "reconstruction D",
    "background B (per channel)",
    "background B (unfolded)",
    "shallow u (unfolded)",
)


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of a 2-D matrix, largest first, computed in float64."""
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)


def effective_rank(values: np.ndarray, energy: float = ENERGY) -> int:
    """The smallest k with Σᵢ<k σᵢ² ≥ ``energy`` · Σ σᵢ² (0 for an all-zero matrix).

    Args:
        values: singular values, largest first.
        energy: fraction of the energy to hold, in (0, 1].
    """
    squares = np.asarray(values, dtype=np.float64) ** 2
    total = squares.sum()
    if total == 0:
        return 0
    # A tiny tolerance: energy 1.0 must not ask for more than the float sum holds.
    held = np.cumsum(squares) / total
    return int(np.searchsorted(held, energy - 1e-12, side="left")) + 1


def unfold(feature: np.ndarray) -> np.ndarray:
    """``C×H×W`` → ``H×(C·W)``: the channels' columns side by side (one row per image row)."""
    channels, height, width = feature.shape
    return feature.transpose(1, 0, 2).reshape(height, channels * width)


@dataclass
class Measurement:
    """The spectra and effective ranks of one quantity over frames.

    Attributes:
        spectra: per matrix (frame, or frame and channel), the singular values.
        ranks: the effective rank of each matrix.
        full_ranks: min(rows, columns) of each matrix.
    """

    spectra: list[np.ndarray] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    full_ranks: list[int] = field(default_factory=list)

    def add(self, matrix: np.ndarray, energy: float, center: bool = False) -> None:
        values = singular_values(matrix - matrix.mean() if center else matrix)
        self.spectra.append(values)
        self.ranks.append(effective_rank(values, energy))
        self.full_ranks.append(min(matrix.shape))

    def mean_normalised_spectrum(self) -> np.ndarray:
        """σᵢ / σ₁ averaged over the matrices, over the length of the shortest spectrum."""
        length = min(len(values) for values in self.spectra)
        rows = [values[:length] / values[0] for values in self.spectra if values[0] > 0]
        return np.mean(rows, axis=0) if rows else np.zeros(length)


@dataclass
class LowRankReport:
    """Measurements by quantity (:data:`QUANTITIES`), the frames, the energy, centring."""

    energy: float
    center: bool = False
    frames: list[str] = field(default_factory=list)
    measurements: dict[str, Measurement] = field(
        default_factory=lambda: {name: Measurement() for name in QUANTITIES}
    )

    def rows(self) -> list[dict]:
        """One summary row per quantity: effective rank mean, std, min, max, and % of full."""
        rows = []
        for name, measured in self.measurements.items():
            ranks = np.asarray(measured.ranks, dtype=np.float64)
            relative = ranks / np.asarray(measured.full_ranks, dtype=np.float64)
            rows.append(
                {
                    "quantity": name,
                    "matrices": len(ranks),
                    "rank_mean": float(ranks.mean()),
                    "rank_std": float(ranks.std()),
                    "rank_min": int(ranks.min()),
                    "rank_max": int(ranks.max()),
                    "full_rank_mean": float(np.mean(measured.full_ranks)),
                    "rank_percent_of_full": float(100 * relative.mean()),
                }
            )
        return rows


@torch.inference_mode()
def feature_maps(
    model: LRRNet, image: np.ndarray, size: str | int = "native", device: str = "cpu"
) -> dict[str, np.ndarray]:
    """The input, ``D``, ``B`` and ``u`` of one frame, at the resolution the network ran.

    Args:
        model: the network (put in eval mode here).
        image: ``H×W`` in [0, 1].
        size: ``"native"`` (reflect-pad to the model's size multiple, crop back to ``H×W``) or N
            (resize to ``N×N``; the maps stay ``N×N`` and so does the input measured).

    Returns:
        ``input`` and ``reconstruction`` (``h×w``), ``background`` and ``shallow``
        (``C×h×w``), float32 arrays.
    """
    model.eval()
    batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    batch = batch.to(device)
    if size == "native":
        padded, crop = pad_to_multiple(batch, model.size_multiple)
    else:
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
        padded, crop = batch, (size, size)
    maps = model.forward_maps(padded)
    return {
        "input": batch[0, 0].cpu().numpy(),
        "reconstruction": crop_to(maps["reconstruction"], crop)[0, 0].float().cpu().numpy(),
        "background": crop_to(maps["background_feature"], crop)[0].float().cpu().numpy(),
        "shallow": crop_to(maps["shallow_feature"], crop)[0].float().cpu().numpy(),
    }


def measure(
    model: LRRNet,
    frames: Iterable[tuple[str, np.ndarray]],
    size: str | int = "native",
    energy: float = ENERGY,
    device: str = "cpu",
    center: bool = False,
) -> LowRankReport:
    """Spectra and effective ranks of :data:`QUANTITIES` over ``(name, H×W frame)`` pairs.

    ``center`` subtracts each matrix's mean before its SVD (see the module notes).
    """
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    report = LowRankReport(energy=energy, center=center)
    for name, image in frames:
        maps = feature_maps(model, image, size=size, device=device)
        if center:  # per channel: each channel of a feature has its own offset
            for key in ("background", "shallow"):
                maps[key] = maps[key] - maps[key].mean(axis=(1, 2), keepdims=True)
        measured = report.measurements
        background_channels = [(c, "background B (per channel)") for c in maps["background"]]
        for matrix, quantity in (
            (maps["input"], "input x"),
            (maps["reconstruction"], "reconstruction D"),
            *background_channels,
            (unfold(maps["background"]), "background B (unfolded)"),
            (unfold(maps["shallow"]), "shallow u (unfolded)"),
        ):
            measured[quantity].add(matrix, energy, center)
        report.frames.append(name)
    if not report.frames:
        raise ValueError("no frames to measure")
    return report


def format_report(report: LowRankReport) -> str:
    """The summary table: effective rank per quantity, absolute and as % of full rank."""
    header = (
        f"effective rank at {report.energy:.0%} energy over {len(report.frames)} frame(s)"
        + (", each matrix centred (its mean subtracted)" if report.center else ""),
        f"{'quantity':<28}{'matrices':>9}{'rank mean ± std':>18}{'min–max':>10}"
        f"{'full rank':>11}{'% of full':>11}",
    )
    lines = list(header)
    for row in report.rows():
        spread = f"{row['rank_mean']:.1f} ± {row['rank_std']:.1f}"
        extent = f"{row['rank_min']}–{row['rank_max']}"
        lines.append(
            f"{row['quantity']:<28}{row['matrices']:>9}{spread:>18}{extent:>10}"
            f"{row['full_rank_mean']:>11.1f}{row['rank_percent_of_full']:>10.1f}%"
        )
    return "\n".join(lines)


def write_report(report: LowRankReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``lowrank.txt`` (the table), ``lowrank.csv`` (per-frame ranks) and
    ``lowrank.png`` (mean normalised spectra, log scale) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "txt": out_dir / "lowrank.txt",
        "csv": out_dir / "lowrank.csv",
        "png": out_dir / "lowrank.png",
    }
    paths["txt"].write_text(format_report(report) + "\n")
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", *QUANTITIES])
        channels = len(report.measurements["background B (per channel)"].ranks) // len(
            report.frames
        )
        for index, frame in enumerate(report.frames):
            row = [frame]
            for name in QUANTITIES:
                ranks = report.measurements[name].ranks
                if name == "background B (per channel)":  # the mean over the frame's channels
                    row.append(np.mean(ranks[index * channels : (index + 1) * channels]))
                else:
                    row.append(ranks[index])
            writer.writerow(row)
    _plot_spectra(report, paths["png"])
    return paths


def _plot_spectra(report: LowRankReport, path: Path) -> None:
    from matplotlib.figure import Figure  # matplotlib loads only when a plot is drawn

    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.subplots()
    floor = 1e-8  # log axis: exact zeros are drawn at the floor
    for name, measured in report.measurements.items():
        spectrum = np.maximum(measured.mean_normalised_spectrum(), floor)
        ranks = np.mean(measured.ranks)
        axes.plot(
            np.arange(1, len(spectrum) + 1),
            spectrum,
            label=f"{name} (rank {ranks:.1f})",
        )
    axes.set_yscale("log")
    axes.set_xlabel("singular value index i")
    axes.set_ylabel("σᵢ / σ₁ (mean over frames)")
    axes.set_title(
        f"{len(report.frames)} frame(s); rank = effective rank at {report.energy:.0%} energy",
        fontsize=9,
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7)
    save_figure(figure, path)
