"""Rollout state in the MLflow registry: the champion and challenger aliases, the challenger's traffic share, and
promotion and rollback with a history of who was champion when."""

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from mlplatform.core.tracking import client_for, set_verdict  # MLflow configured before its import

if TYPE_CHECKING:
    from mlplatform.core.rollout.canary import CanaryStep

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous_champion"
# Registered-model tags: the share of entities the challenger answers (the canary step the rollout reached),
# and since when (epoch nanoseconds), so a step is judged on its own traffic.
TRAFFIC_TAG, TRAFFIC_SINCE_TAG = "challenger_traffic", "challenger_traffic_since_ns"
# When the running canary started (its first step): the A/B analysis compares the arms from then on.
CANARY_SINCE_TAG = "canary_since_ns"
# Model-version tags: when the version last became champion, and when it was rolled back (epoch nanoseconds).
PROMOTED_AT_TAG, ROLLED_BACK_AT_TAG = "promoted_at_ns", "rolled_back_at_ns"


@dataclass(frozen=True)
class RolloutState:
    """What the registry says the serving app should do."""

    champion: str | None
    challenger: str | None
    challenger_share: float
    share_since_ns: int = 0
    canary_since_ns: int = 0

    @property
    def canary_running(self) -> bool:
        """A challenger other than the champion answers a share of the traffic."""
        return self.challenger_share > 0 and self.challenger not in (None, self.champion)


def rollout_state(tracking_uri: str, model_name: str) -> RolloutState:
    """The champion, the challenger and the challenger's traffic share in one registry read.

    Raises:
        LookupError: the registry has no model of that name.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client_for(tracking_uri).get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise LookupError(f"the registry at {tracking_uri} has no model '{model_name}'; run the graph so a "
                              "model is registered") from None
        raise
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    share, since = float(model.tags.get(TRAFFIC_TAG, 0.0)), int(model.tags.get(TRAFFIC_SINCE_TAG, 0))
    return RolloutState(aliases.get(CHAMPION), aliases.get(CHALLENGER), share, since,
                        int(model.tags.get(CANARY_SINCE_TAG, 0)))


def set_challenger_share(tracking_uri: str, model_name: str, share: float, since_ns: int | None = None,
                         *, new_canary: bool = False) -> None:
    """Record the challenger's traffic share; serving apps pick it up on their next registry poll.

    Args:
        since_ns: from when the share's traffic counts (epoch ns):
            :func:`~mlplatform.core.rollout.prediction_log.log_clock_ns`, so replayed traffic is judged on its own
            clock; the wall clock when None.
        new_canary: this share starts a canary: the A/B analysis compares the arms from ``since_ns`` on.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"a traffic share lies in [0, 1]; got {share}")
    since = str(time.time_ns() if since_ns is None else since_ns)
    client = client_for(tracking_uri)
    client.set_registered_model_tag(model_name, TRAFFIC_SINCE_TAG, since)
    if new_canary:
        client.set_registered_model_tag(model_name, CANARY_SINCE_TAG, since)
    client.set_registered_model_tag(model_name, TRAFFIC_TAG, str(share))


@contextmanager
def _promotion_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise promotions on this host: a file lock beside a SQLite registry (servers serialise their own
    alias writes; the history tags and the alias move must not interleave with another promotion's)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(tracking_uri.removeprefix("sqlite:///")).with_suffix(".promotion.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(tracking_uri: str, model_name: str, version: str) -> str | None:
    """Make ``version`` the champion and record it in the history; returns the previous champion.

    The alias is single-valued in MLflow, so concurrent promotions leave exactly one champion; the lock keeps
    the history tag and the alias move of one promotion together.
    """
    client = client_for(tracking_uri)
    with _promotion_lock(tracking_uri):
        previous = client.get_registered_model(model_name).aliases.get(CHAMPION)
        now = time.time_ns()
        if previous is not None and PROMOTED_AT_TAG not in client.get_model_version(model_name, previous).tags:
            # A champion set without this function enters the history just before its successor.
            client.set_model_version_tag(model_name, str(previous), PROMOTED_AT_TAG, str(now - 1))
        client.set_model_version_tag(model_name, version, PROMOTED_AT_TAG, str(now))
        if previous is not None and str(previous) != version:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(previous))
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return None if previous is None else str(previous)


def apply_canary_step(tracking_uri: str, model_name: str, state: RolloutState, step: "CanaryStep",
                      since_ns: int | None) -> None:
    """Act on the running canary's ``step`` in the registry: advance and abort set the challenger's share (from
    ``since_ns``), promote makes the challenger the champion and sets the share to 0; a promoted or aborted
    challenger's training run gets its verdict (promoted / archived). Hold changes nothing."""
    challenger = state.challenger
    assert challenger is not None, "a running canary has a challenger"
    if step.action in ("advance", "abort"):
        set_challenger_share(tracking_uri, model_name, step.share, since_ns=since_ns)
    elif step.action == "promote":
        promote(tracking_uri, model_name, challenger)
        set_challenger_share(tracking_uri, model_name, 0.0, since_ns=since_ns)
    if step.action in ("promote", "abort"):  # the experiment record carries how the canary ended
        run_id = client_for(tracking_uri).get_model_version(model_name, challenger).run_id
        assert run_id is not None, "every candidate version is registered from its training run"
        set_verdict(tracking_uri, run_id, "promoted" if step.action == "promote" else "archived")


class ChampionRecord(TypedDict):
    """One promotion in the history: the version and when it became champion and was rolled back (epoch ns,
    0 when never)."""

    version: str
    promoted_at_ns: int
    rolled_back_at_ns: int


def champion_history(tracking_uri: str, model_name: str) -> list[ChampionRecord]:
    """Every version ever promoted, newest promotion first."""
    client = client_for(tracking_uri)
    history: list[ChampionRecord] = []
    for mv in client.search_model_versions(f"name = '{model_name}'"):
        if PROMOTED_AT_TAG in mv.tags:
            history.append({"version": str(mv.version), "promoted_at_ns": int(mv.tags[PROMOTED_AT_TAG]),
                            "rolled_back_at_ns": int(mv.tags.get(ROLLED_BACK_AT_TAG, 0))})
    return sorted(history, key=lambda row: row["promoted_at_ns"], reverse=True)


def previous_champion(tracking_uri: str, model_name: str) -> str | None:
    """The version that was champion before the current one and has not been rolled back since its promotion;
    without recorded history, the ``previous_champion`` alias."""
    current = rollout_state(tracking_uri, model_name).champion
    history = champion_history(tracking_uri, model_name)
    for row in history:
        if row["version"] != current and row["rolled_back_at_ns"] < row["promoted_at_ns"]:
            return row["version"]
    if history:
        return None
    alias = client_for(tracking_uri).get_registered_model(model_name).aliases.get(PREVIOUS_CHAMPION)
    return None if alias is None or str(alias) == current else str(alias)


def rollback(tracking_uri: str, model_name: str) -> tuple[str, str]:
    """Restore the previous champion; returns ``(rolled back version, restored version)``.

    The rolled-back version is tagged so a later rollback never returns to it, and the challenger's traffic
    share goes to 0.

    Raises:
        LookupError: no champion, or no earlier champion to return to.
    """
    client = client_for(tracking_uri)
    with _promotion_lock(tracking_uri):
        current = rollout_state(tracking_uri, model_name).champion
        if current is None:
            raise LookupError(f"{model_name} has no champion to roll back")
        target = previous_champion(tracking_uri, model_name)
        if target is None:
            raise LookupError(f"{model_name} has no earlier champion than version {current} to roll back to; "
                              "promote a version instead")
        client.set_model_version_tag(model_name, current, ROLLED_BACK_AT_TAG, str(time.time_ns()))
        client.set_registered_model_alias(model_name, CHAMPION, target)
    set_challenger_share(tracking_uri, model_name, 0.0)
    return current, target
