"""Inference variants of the demo's models, side by side: speed of one request's scoring and the hold-out metric.

Needs a data directory where the demo graph ran (`mlplatform demo --data-dir DIR`). For each family's saved
candidate (``DIR/<brief>/models/lightgbm`` and ``.../torch``) and each way of scoring one feature dict, the script
times scoring one hold-out row at a time (what ``POST /predict`` does: the row's preprocessing and the model,
p50/p99 over ``--rows`` rows, thread CPU time beside wall time) and scoring them in micro-batches of
``--batch`` rows (rows per second), and scores the whole hold-out split row by row through the variant to report
the brief's primary metric (at the model's threshold) and ROC AUC beside the reference's, and the largest
difference of any score from the reference (``predict_score`` on a frame).

Variants: ``frame`` (the reference: a one-row polars frame, the model's own ``predict_score``), ``row`` (LightGBM:
``serving/row_scoring.py``), and for torch ``row + <backend>`` for every backend of
``mlplatform.core.torch_model.INFERENCE_BACKENDS`` (ONNX Runtime, TorchScript, eager, dynamic INT8 by ONNX
Runtime and by torch). With ``--lleaves`` (the lleaves package importable) LightGBM's trees compiled by lleaves
are timed too, as the model call alone.

    .venv/bin/python benchmarks/bench_inference.py --data-dir DIR
"""

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.datasets import split_training_set
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.models import load_candidate
from mlplatform.serving.row_scoring import row_scorer
from mlplatform.serving.schemas import feature_frame, feature_types
from mlplatform.settings import Workspace


def timed(score: Callable[[list[dict]], np.ndarray], rows: list[dict], batch: int) -> dict:
    """p50/p99 wall and CPU microseconds of scoring one row, and rows/s in batches of ``batch``."""
    for row in rows[:20]:
        score([row])
    wall, cpu = [], []
    for row in rows:
        w, c = time.perf_counter(), time.thread_time()
        score([row])
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    started = time.perf_counter()
    for at in range(0, len(rows), batch):
        score(rows[at:at + batch])
    batched = len(rows) / (time.perf_counter() - started)
    return {"p50_us": 1e6 * float(np.percentile(wall, 50)), "p99_us": 1e6 * float(np.percentile(wall, 99)),
            "cpu_us": 1e6 * float(np.mean(cpu)), "rows_per_s_single": len(rows) / sum(wall),
            "rows_per_s_batched": batched}


def quality(score: Callable[[list[dict]], np.ndarray], rows: list[dict], labels: np.ndarray, task: str,
            threshold: float, primary: str) -> tuple[dict, np.ndarray]:
    scores = np.concatenate([score([row]) for row in rows])
    metrics = compute_metrics(task, labels, scores, threshold=threshold)
    return {primary: metrics[primary], "roc_auc": metrics.get("roc_auc", float("nan"))}, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="where `mlplatform demo` ran")
    parser.add_argument("--rows", type=int, default=2000, help="hold-out rows timed one at a time")
    parser.add_argument("--batch", type=int, default=32, help="rows per micro-batch")
    parser.add_argument("--lleaves", action="store_true", help="also time LightGBM compiled by lleaves")
    args = parser.parse_args()
    brief = load_brief(DEMO_BRIEF)
    ws = Workspace(args.data_dir.resolve(), brief.name)
    test = split_training_set(brief, pl.read_parquet(ws.table("training", "training_set"))).test
    # What serving gives the models, less a column this run's training set lacks (an older run's data).
    types = {name: kind for name, kind in feature_types(brief).items() if name in test.columns}
    rows = test.select(list(types)).to_dicts()
    labels = test[brief.label.column].to_numpy()
    timed_rows = (rows * (args.rows // len(rows) + 1))[:args.rows]
    primary = brief.metrics.primary
    print(f"{len(rows):,} hold-out rows; {args.rows:,} timed one at a time, batches of {args.batch}; "
          f"load average {os.getloadavg()[0]:.2f} before")
    table = []
    for family in ("lightgbm", "torch"):
        model = load_candidate(ws.models_dir / family)
        reference = model.predict_score

        def frame_path(batch: list[dict], reference: Callable = reference) -> np.ndarray:
            return np.asarray(reference(feature_frame(batch, types)))

        variants: dict[str, Callable[[list[dict]], np.ndarray]] = {"frame (reference)": frame_path}
        if family == "lightgbm":
            single = row_scorer(model, types)
            assert single is not None, "the LightGBM row path refused the demo's model"

            def row_path(batch: list[dict], single: Callable = single, frame: Callable = frame_path) -> np.ndarray:
                return single(batch[0]) if len(batch) == 1 else frame(batch)

            variants["row"] = row_path
        else:
            from mlplatform.core.torch_model import INFERENCE_BACKENDS, compile_network, row_scores

            for backend in INFERENCE_BACKENDS:
                variants[f"row + {backend}"] = row_scores(model, compile_network(model, backend))
        _, expected = quality(frame_path, rows, labels, model.task, model.threshold, primary)
        for label, score in variants.items():
            metric, scores = quality(score, rows, labels, model.task, model.threshold, primary)
            speed = timed(score, timed_rows, args.batch)
            table.append((family, label, speed, metric, float(np.max(np.abs(scores - expected)))))
            print(f"  {family} {label}: p50 {speed['p50_us']:.0f} us", flush=True)
        if family == "lightgbm" and args.lleaves:
            table.append(lleaves_row(ws, model, types, timed_rows, args.batch))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(f"| family | variant | p50 µs | p99 µs | CPU µs/row | rows/s one at a time | rows/s in batches of "
          f"{args.batch} | hold-out {primary} | hold-out ROC AUC | largest score difference |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for family, label, speed, metric, difference in table:
        print(f"| {family} | {label} | {speed['p50_us']:.0f} | {speed['p99_us']:.0f} | {speed['cpu_us']:.0f} | "
              f"{speed['rows_per_s_single']:,.0f} | {speed['rows_per_s_batched']:,.0f} | "
              f"{metric.get(primary, float('nan')):.4f} | {metric.get('roc_auc', float('nan')):.4f} | "
              f"{difference:.1e} |")


def lleaves_row(ws: Workspace, model, types: dict, rows: list[dict], batch: int) -> tuple:
    """LightGBM's model call alone, compiled by lleaves, on the design rows the row path builds."""
    import tempfile

    import lleaves

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        compiled = lleaves.Model(model_file=str(ws.models_dir / "lightgbm" / "model.txt"))
        compiled.compile(cache=str(Path(scratch) / "model.so"))
        seconds = time.perf_counter() - started
        design = np.random.default_rng(0).random((len(rows), compiled.num_feature()))
        speed = timed(lambda batch: compiled.predict(design[:len(batch)], n_jobs=1), rows, batch)
        plain = timed(lambda batch: model.booster.predict(design[:len(batch)], num_threads=1), rows, batch)
        difference = float(np.max(np.abs(compiled.predict(design) - model.booster.predict(design))))
    print(f"  lleaves: compiled in {seconds:.1f} s; model call p50 {speed['p50_us']:.1f} us against LightGBM's "
          f"{plain['p50_us']:.1f} us")
    return ("lightgbm", f"lleaves model call only (LightGBM's own: p50 {plain['p50_us']:.0f} µs; compile "
            f"{seconds:.0f} s)", speed, {}, difference)


if __name__ == "__main__":
    main()
