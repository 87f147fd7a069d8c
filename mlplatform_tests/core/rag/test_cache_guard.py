"""The semantic cache's word guard: whatever the embedding says, a cached answer is reused only for a question with
the same numbers and identifiers, the same negation, and no content word swapped for another."""

import numpy as np
import pytest

from mlplatform.core.rag.cache import SemanticCache, same_question
from mlplatform.core.rag.types import Answer, Citation

REWORDED = [
    ("Which gates are blocking?", "Which of the gates block the run?"),
    ("Where does the production profile move the online store?",
     "In the production profile, where is the online store moved to?"),
    ("Why was version 2 not promoted?", "Why wasn't version 2 promoted?"),
    ("Which features drifted in 2025-03?", "What features showed drift in 2025-03?"),
    ("What is the data-quality total score of customers?", "How does customers score on data quality in total?"),
]
NEAR_MISSES = [
    ("What is the f1 of lightgbm?", "What is the recall of lightgbm?"),
    ("What is the precision of lightgbm?", "What is the recall of lightgbm?"),
    ("Which gates block the run?", "Which gates do not block the run?"),
    ("Which features drifted in 2025-10?", "Which features drifted in 2025-11?"),
    ("What is the data-quality score of customers?", "What is the data-quality score of events?"),
    ("Where does the online store live in production?", "Where does the offline store live in production?"),
]


@pytest.mark.parametrize(("asked", "cached"), REWORDED)
def test_rewordings_pass_the_guard(asked, cached):
    assert same_question(asked, cached)


@pytest.mark.parametrize(("asked", "cached"), NEAR_MISSES)
def test_near_misses_do_not(asked, cached):
    assert not same_question(asked, cached)


def _constant(texts):
    """An embedding blind to every difference (as an LSA fitted on a small corpus is to words it lacks)."""
    return np.ones((len(texts), 4))


def test_an_embedding_that_confuses_near_misses_still_gets_no_false_hit(tmp_path):
    cache = SemanticCache(tmp_path / "cache.json", _constant, 0.85, "v1")
    answer = Answer(question="What is the precision of lightgbm?", text="The precision of lightgbm is 0.41.",
                    citations=[Citation("c1", "metrics.md", None, "0.41")], abstained=False, generator="extractive")
    cache.store("What is the precision of lightgbm?", answer)
    assert cache.lookup("What is the recall of lightgbm?") is None
    assert cache.lookup("What is the precision of the lightgbm model on the hold-out?") is None  # words added
    hit = cache.lookup("What is the lightgbm precision?")
    assert hit is not None and hit.text == answer.text
