"""Taking a challenger the promotion gate passed into production, on a real SQLite MLflow registry: a promotion
moves the champion alias and records the verdict; a canary gives the challenger its first share beside the
champion and leaves the verdict to the canary's end."""

import pytest

from mlplatform.core.rollout.champion import NO_CANARY_YET, ChallengerMove, promote_challenger, start_canary
from mlplatform.core.rollout.registry import champion_history, rollout_state
from mlplatform.core.tracking import client_for
from mlplatform_tests.core.model_registry import registry_with_versions

MODEL = "shop_model"


@pytest.fixture()
def registry(tmp_path) -> tuple[str, list[tuple[str, str]]]:
    """A SQLite registry holding three versions of one model, each registered from its run: (version, run id)."""
    return registry_with_versions(tmp_path, MODEL, 3)


def _verdict(uri: str, run_id: str) -> str | None:
    return client_for(uri).get_run(run_id).data.tags.get("verdict")


def test_the_first_promotion_makes_the_challenger_champion_and_records_the_verdict(registry):
    uri, [(v1, run1), *_] = registry

    move = promote_challenger(uri, MODEL, v1, run1)

    assert move == ChallengerMove("promoted", v1, v1)
    assert rollout_state(uri, MODEL).champion == v1
    assert [row["version"] for row in champion_history(uri, MODEL)] == [v1]
    assert _verdict(uri, run1) == "promoted"
    assert move.metadata() == {"champion_version": v1, "previous_champion": "none"}


def test_a_promotion_names_the_champion_it_replaced_and_why_no_canary_ran_when_one_was_asked_for(registry):
    uri, [(v1, run1), (v2, run2), _] = registry
    promote_challenger(uri, MODEL, v1, run1)

    move = promote_challenger(uri, MODEL, v2, run2, canary_asked=True)

    assert (move.champion_version, move.previous_champion, move.challenger_share) == (v2, v1, 0.0)
    assert str(client_for(uri).get_registered_model(MODEL).aliases["previous_champion"]) == v1
    assert move.metadata() == {"champion_version": v2, "previous_champion": v1, "canary": NO_CANARY_YET}


def test_a_canary_gives_the_challenger_its_share_from_the_log_clock_and_keeps_the_champion(registry):
    uri, [(v1, run1), (v2, run2), _] = registry
    promote_challenger(uri, MODEL, v1, run1)

    move = start_canary(uri, MODEL, v2, v1, 0.05, since_ns=1_700_000_000_000_000_000)

    state = rollout_state(uri, MODEL)
    assert (state.champion, state.challenger, state.challenger_share) == (v1, v2, 0.05)
    assert state.share_since_ns == state.canary_since_ns == 1_700_000_000_000_000_000  # a new canary from then
    assert _verdict(uri, run2) is None  # decided when the canary ends
    assert move == ChallengerMove("canary", v2, v1, 0.05)
    assert move.metadata() == {"champion_version": v1, "challenger_version": v2, "challenger_share": 0.05}
