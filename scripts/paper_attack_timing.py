"""Time the paper preset's attack phase on a GPU, on a synthetic stand-in of the real test split.

    python scripts/paper_attack_timing.py --out /tmp/standin --device cuda [--images 2117] [--limit 512]

1. writes ``--images`` synthetic chest X-rays at the paper's 224 px (the real test split has 2,117);
2. lists them all as the test split and saves DenseNet-121 with seeded random weights as the
   checkpoint (an attack's cost does not depend on what the weights are);
3. ``python -m advparity bench --preset paper`` on the device: images/s per library × attack at 224 px,
   and the whole attack phase extrapolated from them;
4. ``python -m advparity run --preset paper --limit N``: the real runner on the first N stand-in images
   (all 93 cells), so the extrapolation can be checked against a measured wall time.

Everything it prints is what goes into the README's GPU table. Nothing is reused between calls except
the stand-in data and checkpoint in ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from advparity.model.checkpoint import save_checkpoint
from advparity.model.data import SPLIT_COLUMNS, save_split, scan_dataset
from advparity.model.network import build_densenet121
from advparity.model.synthetic import SynthSpec, counts_for_total, write_dataset


def prepare(out: Path, images: int, size: int) -> tuple[Path, Path, Path]:
    data = out / "data"
    if not data.is_dir():
        started = time.perf_counter()
        write_dataset(data, SynthSpec(counts=counts_for_total(images), size=size, seed=0), progress=False)
        print(f"stand-in: {images} synthetic images at {size} px in {time.perf_counter() - started:.0f} s")
    split = scan_dataset(data).index.copy()
    split["split"] = "test"
    split_path = save_split(pd.DataFrame(split[list(SPLIT_COLUMNS)]), out / "model" / "split.csv")
    checkpoint = out / "model" / "model.safetensors"
    if not checkpoint.is_file():
        torch.manual_seed(0)
        card = {
            "image_size": size,
            "data": {"root": str(data), "split_file": split_path.name},
            "preset": "paper",
        }
        save_checkpoint(build_densenet121(weights=None).eval(), card, checkpoint)
    return data, split_path, checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=2117, help="stand-in test split size (default 2117)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--batch", type=int, default=64, help="bench batch (the paper preset attacks 64 at a time)"
    )
    parser.add_argument(
        "--limit", type=int, default=512, help="images the real run attacks (0: skip the run)"
    )
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()

    data, split, checkpoint = prepare(args.out, args.images, args.size)
    harness = [sys.executable, "-m", "advparity", "-q"]
    device = ["--device", args.device]
    bench = [
        *harness,
        "bench",
        "--preset",
        args.preset,
        "--images",
        str(args.images),
        "--size",
        str(args.size),
    ]
    bench += ["--batch", str(args.batch), "--json", str(args.out / "bench.json"), *device]
    subprocess.run(bench, check=True)
    if args.limit:
        run_dir = args.out / f"run-{args.limit}"
        command = [
            *harness,
            "run",
            "--preset",
            args.preset,
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(data),
        ]
        command += ["--split", str(split), "--out", str(run_dir), "--limit", str(args.limit), *device]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - started
        print(
            f"measured: {args.preset} preset attack phase on {args.limit} images in {seconds:.0f} s "
            f"(x{args.images / args.limit:.2f} for {args.images} images: ~{seconds * args.images / args.limit / 60:.1f} min)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
