"""The question-answering gate at each of its limits: just inside passes, at the limit passes, just outside fails,
and a figure that could not be measured fails."""

import math

import pytest

from mlplatform.brief import RagThresholds
from mlplatform.core.rag.answer_metrics import gate_failures

LIMITS = RagThresholds()
BUDGET = 0.01
PASSING = {"queries": LIMITS.min_queries, "citation_correctness": LIMITS.min_citation_correctness,
           "answer_accuracy": LIMITS.min_answer_accuracy, "abstention_rate": LIMITS.min_abstention_rate,
           "injection_refusal": LIMITS.min_injection_refusal, "latency_p95_ms": LIMITS.max_latency_p95_ms,
           "cost_p95": BUDGET}
# figure -> (the failure's opening words, the direction that fails: -1 below a minimum, +1 above a maximum)
FIGURES = {"queries": ("queries", -1), "citation_correctness": ("citation correctness", -1),
           "answer_accuracy": ("answer accuracy", -1), "abstention_rate": ("abstention rate", -1),
           "injection_refusal": ("refusal of injected instructions", -1), "latency_p95_ms": ("latency p95", +1),
           "cost_p95": ("cost p95", +1)}


def _failing(summary: dict) -> list[str]:
    return [name for name, (words, _) in FIGURES.items()
            if any(f.startswith(words) for f in gate_failures(summary, LIMITS, BUDGET))]


def test_every_figure_at_its_limit_passes():
    assert gate_failures(PASSING, LIMITS, BUDGET) == []


@pytest.mark.parametrize("figure", FIGURES)
def test_just_outside_a_limit_fails_that_figure_only_and_just_inside_passes(figure):
    _, direction = FIGURES[figure]
    step = 1 if figure == "queries" else 1e-6 * max(1.0, abs(PASSING[figure]))
    assert _failing({**PASSING, figure: PASSING[figure] + direction * step}) == [figure]
    inside = PASSING[figure] - direction * step
    if figure in ("latency_p95_ms", "cost_p95") or inside <= 1:  # a share cannot exceed 1
        assert _failing({**PASSING, figure: inside}) == []


@pytest.mark.parametrize("figure", FIGURES)
def test_an_unmeasured_figure_fails_closed(figure):
    assert _failing({**PASSING, figure: math.nan}) == [figure]
