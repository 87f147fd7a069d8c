"""A tiny plain-table brief (no time, no key) and its data, for the monitoring and automation tests."""

from pathlib import Path

import numpy as np
import polars as pl
import yaml


def write_plain_table_brief(folder: Path, rows: int = 600, seed: int = 0) -> Path:
    """A binary table (size, colour → bought) without time or key, and a brief for it; returns the brief path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    size, colour = rng.normal(size=rows), rng.choice(["red", "blue"], rows)
    bought = (rng.random(rows) < 1 / (1 + np.exp(-(2 * size + (colour == "red"))))).astype(int)
    pl.DataFrame({"size": size.round(4), "colour": colour, "bought": bought}).write_csv(folder / "shop.csv")
    brief = {
        "name": "plain_shop", "owner": "ml@example.com",
        "problem": {"business_objective": "Sell more", "success_metric": "conversion", "baseline": "size rule",
                    "ml_task_type": "binary", "prediction_target": "bought", "prediction_consumer": "batch",
                    "latency_requirement": "batch", "data_available": "one table"},
        "entity": "row", "entity_key": "row_id",
        "partition_start": "2026-01-01", "partition_end": "2026-01-02",
        "sources": {"shop": {"path": "shop.csv", "format": "csv", "row_key": "row_id", "observed_at": "2026-01-01",
                             "columns": {"size": {"dtype": "float"}, "colour": {"dtype": "str"},
                                         "bought": {"dtype": "int", "min": 0, "max": 1}}}},
        "label": {"source": "shop", "column": "bought", "timestamp": "observed_at", "definition": "bought or not"},
        "features": {"source": "shop"},
        "split": {"validation_fraction": 0.2, "test_fraction": 0.2},
        "metrics": {"primary": "f1"},
        "rules_baseline": [{"when": "row_size >= 0", "predict": 1}],
        "training": {"tuning_trials": 0, "torch": False},
    }
    path = folder / "brief.yaml"
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    return path
