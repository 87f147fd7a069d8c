"""One-row scoring without a frame scores exactly what the model scores on a frame, for every transform step."""

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import Rule, Training
from mlplatform.core.training import rules_baseline, train_lightgbm
from mlplatform.serving.row_scoring import row_scorer
from mlplatform.serving.schemas import feature_frame

TYPES = {"amount": float, "visits": int, "score": float, "plan": str, "region": str, "device": str, "flag": bool}
PLANS, REGIONS, DEVICES = ["a", "b", "c"], [f"r{i}" for i in range(40)], ["ios", "android", "web"]
TRANSFORMS = {"amount": ["log", "standardize"], "visits": ["bin"], "plan": ["one_hot"], "region": ["target_encode"],
              "device": ["raw"]}


def random_rows(rng: np.random.Generator, n: int, unseen: bool) -> list[dict]:
    """Rows with a fifth of every value missing; ``unseen`` adds levels and extremes training never saw."""
    def pick(values: list, extra: list) -> object:
        pool = values + (extra if unseen else [])
        return None if rng.random() < 0.2 else pool[rng.integers(len(pool))]

    return [{"amount": pick([float(x) for x in rng.lognormal(3, 1, 5)], [-5.0, 0.0, 1e9, float("nan")]),
             "visits": pick([int(x) for x in rng.integers(0, 50, 5)], [-3, 10**6]),
             "score": pick([float(x) for x in rng.normal(size=5)], [float("nan")]),
             "plan": pick(PLANS, ["z", ""]), "region": pick(REGIONS, ["r999"]), "device": pick(DEVICES, ["tv"]),
             "flag": pick([True, False], [])} for _ in range(n)]


def trained(task: str, transforms: dict[str, list[str]] | None, seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = feature_frame(random_rows(rng, 1200, unseen=False), TYPES)
    signal = (frame["amount"].fill_null(0).log1p() + frame["plan"].eq("b").fill_null(False).cast(float)
              + frame["region"].str.slice(1).cast(pl.Int64, strict=False).fill_null(0) / 20).to_numpy()
    noisy = signal + rng.normal(size=frame.height)
    label = {"binary": noisy > np.median(noisy), "regression": noisy,
             "multiclass": np.digitize(noisy, np.quantile(noisy, [1 / 3, 2 / 3]))}[task]
    frame = frame.with_columns(pl.Series("y", label))
    settings = Training(transforms=transforms) if transforms is not None else None
    return train_lightgbm(task, frame[:900], frame[900:], list(TYPES), "y", params={"num_iterations": 40},
                          transforms=settings)


def _row_and_frame_scores(model, seed: int, n: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """``n`` random rows (unseen levels, an empty row and an all-missing row included), each scored by the model's
    row scorer and, together, as one frame: (rows, row scores, frame scores in the same shape)."""
    score_row = row_scorer(model, TYPES)
    assert score_row is not None
    rows = random_rows(np.random.default_rng(seed), n, unseen=True) + [{}, dict.fromkeys(TYPES)]
    found = np.concatenate([score_row(row) for row in rows])
    return rows, found, model.predict_score(feature_frame(rows, TYPES)).reshape(found.shape)


@pytest.mark.parametrize(("task", "transforms"), [
    ("binary", TRANSFORMS), ("multiclass", TRANSFORMS), ("regression", TRANSFORMS),
    ("binary", {}),  # defaults: one-hot under 20 levels, target encoding above
    ("binary", None),  # no transforms: strings are LightGBM categoricals
])
def test_row_scores_equal_frame_scores(task, transforms):
    model = trained(task, transforms)
    rows, found, expected = _row_and_frame_scores(model, seed=7, n=400)
    assert np.array_equal(found, expected)
    assert len(np.unique(found)) > 10, "the rows must reach many leaves"


def test_models_it_cannot_encode_keep_the_frame_path():
    rules = rules_baseline([Rule(when="visits > 3", predict=1)])
    assert row_scorer(rules, TYPES) is None
    model = trained("binary", {"visits": ["one_hot"]})  # one-hot of an integer column: level texts of numbers
    assert row_scorer(model, TYPES) is None


def test_a_per_group_threshold_model_scores_rows_as_it_scores_frames():
    from mlplatform.core.fairness import GroupThresholdModel, GroupThresholds

    base = trained("binary", TRANSFORMS)
    groups = GroupThresholds(["device"], {"ios": 0.3, "android": 0.6}, default=0.5, constraint="demographic_parity")
    model = GroupThresholdModel(base, groups)
    rows, found, expected = _row_and_frame_scores(model, seed=3, n=300)
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)
    in_group = [i for i, r in enumerate(rows) if r.get("device") in ("ios", "android")]
    shifted = [rows[i] for i in in_group]
    assert shifted and not np.allclose(found[in_group], base.predict_score(feature_frame(shifted, TYPES)))
