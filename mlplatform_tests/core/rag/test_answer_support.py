"""What counts as support for an extractive answer: names and numbers stated in prose, not in code or commands."""

from mlplatform.core.rag.generation import ExtractiveAnswerer, specific_terms, support
from mlplatform.core.rag.types import Chunk, Hit


def _hits(*texts: str) -> list[Hit]:
    return [Hit(Chunk(f"c{i}", text, f"doc{i}.md", i), 1.0 / (i + 1), i + 1, "hybrid") for i, text in enumerate(texts)]


def test_a_name_in_the_question_must_be_in_the_passage():
    assert specific_terms("What recall did the XGBoost candidate reach?") == {"xgboost"}
    passage = "The LightGBM candidate reached a recall of 0.61 on the hold-out."
    assert support("What recall did the XGBoost candidate reach?", passage) == 0.0
    assert support("What recall did the LightGBM candidate reach?", passage) > 0.5
    answer = ExtractiveAnswerer().answer("What recall did the XGBoost candidate reach?", _hits(passage))
    assert answer.abstained


def test_a_number_inside_a_code_block_or_a_command_supports_nothing():
    readme = ("Ask the platform about its own run.\n```bash\nmlplatform ask \"why was version 2 not promoted?\"\n```\n"
              "Benchmarks ran with `bench_serving.py --workers 1,2` on the shared machine, every version promoted.")
    question = "Why was version 2 not promoted?"
    assert support(question, readme) == 0.0
    assert ExtractiveAnswerer().answer(question, _hits(readme)).abstained
    stated = "Version 2 was not promoted: the promotion gate found its F1 below the champion's."
    answer = ExtractiveAnswerer().answer(question, _hits(readme, stated))
    assert not answer.abstained and answer.text.startswith("Version 2 was not promoted")
    assert [c.document for c in answer.citations] == ["doc1.md"]
