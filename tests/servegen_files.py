"""Production-shaped ServeGen files for tests: a few clients, written into a test's tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rlscale.workload.servegen import DAY_S, LENGTH_WINDOW_S, WINDOW_S

# (rate req/s, family, shape, scale) of one window; rate 0 = idle
Window = tuple[float, str, float, float]
IDLE: Window = (0.0, "", 0.0, 0.0)


def cv_of(family: str, shape: float) -> float:
    """The data's CV column: a Gamma window's is 1/sqrt(k); a Weibull fit's differs from its data, any value does."""
    return shape**-0.5 if family == "Gamma" else 1.0


def write_trace(folder: Path, client: int, windows: Sequence[Window]) -> Path:
    path = folder / f"chunk-{client}-trace.csv"
    rows = [
        f"{i * WINDOW_S},{float(rate)!r},{cv_of(family, shape) if rate else 0},{family},{float(shape)},{float(scale)}"
        for i, (rate, family, shape, scale) in enumerate(windows)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_dataset(folder: Path, client: int, pdfs: dict[int, tuple[dict[int, float], dict[int, float]]]) -> Path:
    """``pdfs``: 6-hour window index -> (prompt pdf, output pdf), written as ServeGen does (indented JSON, dict
    literals in strings); the windows not given are written empty."""
    last = max(pdfs, default=0)
    entries = []
    for w in range(last + 1):
        prompt, output = pdfs.get(w, ({}, {}))
        entries.append(
            f'  "{w * LENGTH_WINDOW_S}": {{\n    "input_tokens": "{prompt!r}",\n    "output_tokens": "{output!r}"\n  }}'
        )
    path = folder / f"chunk-{client}-dataset.json"
    path.write_text("{\n" + ",\n".join(entries) + "\n}\n")
    return path


def windows_for(days: int, window: Callable[[int], Window]) -> list[Window]:
    """``window(i)`` for every 600 s window of ``days`` days."""
    return [window(i) for i in range(days * DAY_S // WINDOW_S)]
