"""How the promotion gate's decision reads: one line (promote, or the failed checks) and the reasons as a list."""

from mlplatform.core.promotion import PromotionDecision


def test_a_promotion_reads_promote_and_lists_every_reason():
    decision = PromotionDecision(True, ["PASS f1 0.61 > champion 0.58", "PASS size 2.1 MB <= 50 MB"], {})

    assert decision.summary == "promote"
    assert decision.reasons_markdown == "- PASS f1 0.61 > champion 0.58\n- PASS size 2.1 MB <= 50 MB"


def test_a_refusal_names_only_the_failed_checks():
    decision = PromotionDecision(False, ["PASS size 2.1 MB <= 50 MB", "FAIL f1 0.55 < champion 0.58",
                                         "FAIL latency 40 ms > 20 ms"], {})

    assert decision.summary == "blocked: FAIL f1 0.55 < champion 0.58; FAIL latency 40 ms > 20 ms"
    assert decision.reasons_markdown.splitlines()[1] == "- FAIL f1 0.55 < champion 0.58"


def test_no_reasons_read_as_a_dash():
    assert PromotionDecision(False, [], {}).reasons_markdown == "-"
    assert PromotionDecision(False, [], {}).summary == "blocked: "
