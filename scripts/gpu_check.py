"""Training throughput of the torch tabular model on CUDA (bf16) against the CPU, as one JSON line.

    python scripts/gpu_check.py                 # 1M rows x 30 features on CUDA, 50k rows on the CPU
    python scripts/gpu_check.py --cpu-only      # no GPU needed: checks the script and the CPU figure

Both devices train the same model code (``mlplatform.core.torch_model.train_torch``) for a fixed number of
epochs on synthetic rows; ``samples_per_s`` counts the training passes only. The CPU gets fewer rows and
epochs so it finishes in reasonable time: throughput per sample does not depend on the row count.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import polars as pl
import torch

from mlplatform.core.torch_model import train_torch

_CATEGORICAL = 5
_CARDINALITIES = (4, 12, 50, 200, 1000)


def synthetic(rows: int, features: int, seed: int) -> pl.DataFrame:
    """``features`` columns (five of them categorical) and a binary label with a nonlinear planted signal."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, features - _CATEGORICAL)).astype(np.float32)
    codes = [rng.integers(0, size, rows) for size in _CARDINALITIES]
    logit = numeric[:, 0] * numeric[:, 1] + np.sin(2 * numeric[:, 2]) + 0.5 * numeric[:, 3] + (codes[0] == 1) - 0.5
    columns = {f"x{i}": numeric[:, i] for i in range(numeric.shape[1])}
    columns |= {f"c{i}": pl.Series(code.astype(str)) for i, code in enumerate(codes)}
    return pl.DataFrame({**columns, "label": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)})


def measure(device: str, rows: int, epochs: int, args: argparse.Namespace, threads: int) -> dict:
    train = synthetic(rows, args.features, args.seed)
    validation = synthetic(min(rows, 20_000), args.features, args.seed + 1)
    features = [c for c in train.columns if c != "label"]
    # patience = epochs: every epoch runs, so the figure is for a fixed amount of work.
    params = {"max_epochs": epochs, "patience": epochs, "batch_size": args.batch_size, "num_threads": threads}
    if device == "cuda":  # the first CUDA run pays for context and kernel set-up; keep that out of the figure
        train_torch("binary", train.head(4096), validation.head(1024), features, "label",
                    params={**params, "max_epochs": 1}, device=device)
    started = time.perf_counter()
    model = train_torch("binary", train, validation, features, "label", params=params, seed=args.seed,
                        device=device)
    return {
        "device_name": model.info["device_name"],
        "rows": rows,
        "epochs": model.info["epochs_run"],
        "threads": threads,
        "mixed_precision": model.info["mixed_precision"],
        "pinned_memory": model.info["pinned_memory"],
        "samples_per_s": round(model.info["samples_per_s"]),
        "training_time_s": round(model.info["training_time_s"], 2),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows on CUDA")
    parser.add_argument("--features", type=int, default=30, help="feature columns, five of them categorical")
    parser.add_argument("--epochs", type=int, default=3, help="epochs on CUDA")
    parser.add_argument("--cpu-rows", type=int, default=None, help="training rows on the CPU (default rows/20)")
    parser.add_argument("--cpu-epochs", type=int, default=1)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads (default: all cores; on a busy machine 1 is often faster)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA (for machines without a GPU)")
    args = parser.parse_args(argv)
    if args.features <= _CATEGORICAL + 3:
        parser.error(f"--features must be above {_CATEGORICAL + 3}")
    if not args.cpu_only and not torch.cuda.is_available():
        print(f"no CUDA device for torch {torch.__version__}; install a CUDA build of torch or pass --cpu-only",
              file=sys.stderr)
        return 2
    cuda = None if args.cpu_only else measure("cuda", args.rows, args.epochs, args, args.cpu_threads)
    cpu_rows = args.cpu_rows or max(args.rows // 20, 1000)
    cpu = measure("cpu", cpu_rows, args.cpu_epochs, args, args.cpu_threads)
    print(json.dumps({
        "device_name": cuda["device_name"] if cuda else "none (cpu only)",
        "torch": torch.__version__,
        "features": args.features,
        "batch_size": args.batch_size,
        "cuda": cuda,
        "cpu": cpu,
        "cuda_over_cpu": round(cuda["samples_per_s"] / cpu["samples_per_s"], 2) if cuda else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
