"""Write the compact ServeGen bundles shipped in rlscale/workload/data/ from the shared copy of the original files.

    .venv/bin/python scripts/bundle_servegen.py [--source ../shared/data/servegen] [--out rlscale/workload/data]

For each of language/m-large, m-mid and m-small it reads every chunk-<id>-trace.csv and chunk-<id>-dataset.json
(rlscale.workload.servegen, with file:line errors), writes servegen-<service>.npz, reads it back and checks that
it matches what was read (float32 parameters, identical integers and quantiles), then prints the sizes. The
licence travels as LICENSE-ServeGen beside them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from rlscale.workload.servegen import BUNDLED_SERVICES, load_bundle, read_service_folder, save_bundle

ROOT = Path(__file__).resolve().parents[1]


def bundle(source: Path, out: Path) -> int:
    """Bundle every service; returns the total size written, bytes."""
    total = 0
    for name in BUNDLED_SERVICES:
        service = read_service_folder(source / "language" / name)
        path = out / f"servegen-{name}.npz"
        save_bundle(service, path)
        back = load_bundle(path, name=name)
        for key in ("client_ids", "client", "window", "family", "length_client", "length_window"):
            assert np.array_equal(getattr(back, key), getattr(service, key)), key
        for key in ("prompt_quantiles", "output_quantiles"):
            assert np.array_equal(getattr(back, key), getattr(service, key)), key
        for key in ("rate_per_s", "cv", "shape", "scale"):
            assert np.allclose(getattr(back, key), getattr(service, key), rtol=1e-6, atol=0), key
        size = path.stat().st_size
        total += size
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {service.client_ids.size} clients, "
            f"{service.n_windows} windows, {service.client.size} active client-windows, "
            f"{service.length_client.size} length tables; {size / 1e6:.2f} MB"
        )
    shutil.copyfile(source / "LICENSE", out / "LICENSE-ServeGen")
    print(f"total {total / 1e6:.2f} MB")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "servegen")
    parser.add_argument("--out", type=Path, default=ROOT / "rlscale" / "workload" / "data")
    args = parser.parse_args()
    bundle(args.source, args.out)


if __name__ == "__main__":
    main()
