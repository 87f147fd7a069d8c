"""Datasets that are not the demo, of different shapes, made by the tests (seeded, a few thousand rows)."""

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl


def shop_visits(folder: Path, n: int = 4000, seed: int = 0) -> Path:
    """Binary, no time, no key; a string target ('yes'/'no'), categorical and numeric inputs, some nulls and a
    protected-looking column (gender)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.gamma(2.0, 20_000.0, n)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    visits = rng.poisson(3, n).astype(float)
    visits[rng.random(n) < 0.05] = np.nan
    # Visits matter only in two cities and income non-monotonically: a one-feature rule cannot reach the model.
    busy = np.isin(city, ["nice", "lyon"])
    logit = (-1.6 + 1.1 * busy * (np.nan_to_num(visits, nan=3) - 3) + 2.0 * np.sin(income / 15_000)
             + 0.01 * (age - 50))
    bought = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    path = folder / "shop_visits.csv"
    pl.DataFrame({"age": age, "income": income.round(2), "city": city, "visits": visits,
                  "gender": rng.choice(["f", "m"], n), "bought": bought}).with_columns(
        pl.col("visits").fill_nan(None)).write_csv(path)
    return path


def machine_faults(folder: Path, n_machines: int = 150, days: int = 120, seed: int = 1) -> Path:
    """Multiclass with time and an entity key, narrow: daily sensor readings per machine, fault class 0..2,
    as monthly Parquet files in a folder."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1)
    machine = np.repeat(np.arange(1, n_machines + 1), days)
    day = np.tile(np.arange(days), n_machines)
    temperature = rng.normal(60, 8, machine.size) + 0.05 * day
    vibration = rng.gamma(2.0, 1.0, machine.size)
    score = 0.15 * (temperature - 60) + 0.8 * (vibration - 2)
    fault = np.digitize(score + rng.normal(0, 0.8, machine.size), [0.6, 1.8])
    frame = pl.DataFrame({"machine_id": machine, "reading_time": [start + timedelta(days=int(d)) for d in day],
                          "temperature": temperature.round(3), "vibration": vibration.round(4),
                          "line": rng.choice(["a", "b"], machine.size), "fault": fault})
    out = folder / "machine_faults"
    out.mkdir(parents=True, exist_ok=True)
    for (month,), part in frame.group_by(pl.col("reading_time").dt.strftime("%Y-%m"), maintain_order=True):
        part.write_parquet(out / f"readings_{month}.parquet")
    return out


def house_prices(folder: Path, n: int = 3000, width: int = 30, seed: int = 2) -> Path:
    """Regression, no time, an integer id that is unique per row, wide (``width`` numeric inputs)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, width))
    weights = rng.normal(size=width) * (rng.random(width) < 0.3)
    price = 200_000 + 30_000 * (x @ weights) + 10_000 * np.sin(x[:, 0]) + rng.normal(0, 5_000, n)
    columns = {f"x{i:02d}": x[:, i].round(4) for i in range(width)}
    path = folder / "house_prices.parquet"
    pl.DataFrame({"house_id": np.arange(1, n + 1), **columns, "price": price.round(2)}).write_parquet(path)
    return path
