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


# Real datasets that installed packages ship (nothing is downloaded): scikit-learn's bundled tables and
# statsmodels' bundled datasets, written as the files a person would point `mlplatform init` at.

def _snake(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def breast_cancer(folder: Path) -> Path:
    """scikit-learn's Wisconsin breast-cancer table (569 rows, 30 measurements, binary 'malignant' 0/1, where
    1 is benign in the original coding). Several genuine measurements alone reach a hold-out ROC-AUC > 0.95."""
    from sklearn.datasets import load_breast_cancer

    frame = pl.from_pandas(load_breast_cancer(as_frame=True).frame)
    path = folder / "breast_cancer.csv"
    frame.rename({c: _snake(c) for c in frame.columns}).rename({"target": "benign"}).write_csv(path)
    return path


def blanked(path: Path, share: float, keep: list[str], seed: int = 0) -> Path:
    """A copy of a CSV with ``share`` of the cells of every column but ``keep`` blanked at random."""
    rng = np.random.default_rng(seed)
    frame = pl.read_csv(path)
    out = path.with_name(f"{path.stem}_blanked.csv")
    frame.with_columns(pl.when(pl.Series(rng.random(frame.height) < share)).then(None).otherwise(pl.col(c)).alias(c)
                       for c in frame.columns if c not in keep).write_csv(out)
    return out


def marriage_affairs(folder: Path) -> Path:
    """statsmodels' Fair (1978) affairs survey (6,366 rows): marriage rating 1–5 (multiclass) from age, years
    married, children, religiousness, education, occupations and affairs, which is 0 for 68% of the women."""
    from statsmodels.datasets import fair

    path = folder / "marriage_affairs.csv"
    pl.from_pandas(fair.load_pandas().data).write_csv(path)
    return path


def election_survey(folder: Path) -> Path:
    """statsmodels' 1996 American National Election Study extract (944 rows): the vote (0 Clinton, 1 Dole)
    from the voter's views, education, income and age (a protected attribute)."""
    from statsmodels.datasets import anes96

    path = folder / "election_survey.csv"
    frame = pl.from_pandas(anes96.load_pandas().data)
    frame.rename({c: _snake(c) for c in frame.columns}).with_columns(pl.col("vote").cast(pl.Int64)).write_csv(path)
    return path


def mauna_loa_co2(folder: Path) -> Path:
    """statsmodels' weekly Mauna Loa CO2 record (1958–2001, 2,284 weeks, 59 missing readings): a time series
    without an entity key; the label (this week's ppm) is missing where the reading is, and the input (the
    reading a year before) is missing for the first year and where that reading is."""
    from statsmodels.datasets import co2

    data = co2.load_pandas().data
    frame = pl.DataFrame({"week": [d.date() for d in data.index], "co2": data["co2"].to_numpy()}).with_columns(
        pl.col("co2").fill_nan(None))
    path = folder / "mauna_loa_co2.csv"
    frame.with_columns(co2_year_before=pl.col("co2").shift(52)).write_csv(path)
    return path


def firm_investment(folder: Path, blank_share: float = 0.05, seed: int = 3) -> Path:
    """statsmodels' Grunfeld investment panel (220 rows: 11 firms × 20 years): investment from firm value and
    capital, the firm a text column; ``blank_share`` of the value and capital cells blanked, as in a ledger
    with gaps."""
    from statsmodels.datasets import grunfeld

    rng = np.random.default_rng(seed)
    frame = pl.from_pandas(grunfeld.load_pandas().data).with_columns(pl.col("year").cast(pl.Int64))
    frame = frame.with_columns(pl.when(pl.Series(rng.random(frame.height) < blank_share)).then(None)
                               .otherwise(pl.col(c)).alias(c) for c in ("value", "capital"))
    path = folder / "firm_investment.csv"
    frame.write_csv(path)
    return path
