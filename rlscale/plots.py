"""Figures. matplotlib is imported lazily so the simulator never pays for it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlscale.serving.calibration import CalibrationResult


def calibration_plot(results: list[CalibrationResult], path: Path) -> None:
    """Predicted vs measured step time, one panel per calibration set, log-log with a ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for phase, marker in (("decode", "o"), ("prefill", "s")):
            pts = [f for f in result.fits if f.point.phase == phase]
            ax.scatter([f.point.ms for f in pts], [f.predicted_ms for f in pts], marker=marker, label=phase, s=22)
        lo = min(min(f.point.ms, f.predicted_ms) for f in result.fits) * 0.8
        hi = max(max(f.point.ms, f.predicted_ms) for f in result.fits) * 1.25
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15, label="±10%")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel="measured ms",
            ylabel="predicted ms",
            title=f"{result.name} (mean |err| {result.errors().mean():.1%})",
        )
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
