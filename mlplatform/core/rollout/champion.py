"""Taking a challenger the promotion gate passed into production: promoted at once, or, while another version
serves as champion and the brief asks for a canary, given the canary's first share of the traffic."""

from dataclasses import dataclass
from typing import Literal

from mlplatform.core.rollout.registry import CHALLENGER, promote, set_challenger_share
from mlplatform.core.tracking import set_alias, set_verdict

NO_CANARY_YET = "none: no champion served yet, so there is no traffic to share"


@dataclass(frozen=True)
class ChallengerMove:
    """What was done with the challenger.

    Attributes:
        action: ``promoted`` (it is the champion now) or ``canary`` (it answers ``challenger_share`` of the traffic
            beside the champion).
        challenger_version: the challenger's model version.
        champion_version: the champion after the move.
        challenger_share: the canary's share; 0 once promoted.
        previous_champion: the champion a promotion replaced (None before the first).
        canary: why no canary ran although the brief asks for one (None when it does not ask, or one runs).
    """

    action: Literal["promoted", "canary"]
    challenger_version: str
    champion_version: str
    challenger_share: float = 0.0
    previous_champion: str | None = None
    canary: str | None = None

    def metadata(self) -> dict[str, str | float]:
        """What the move says about itself: the versions, and the canary's share or the replaced champion."""
        if self.action == "canary":
            return {"champion_version": self.champion_version, "challenger_version": self.challenger_version,
                    "challenger_share": self.challenger_share}
        said: dict[str, str | float] = {"champion_version": self.champion_version,
                                        "previous_champion": self.previous_champion or "none"}
        return said | ({"canary": self.canary} if self.canary else {})


def start_canary(tracking_uri: str, model_name: str, version: str, champion: str, share: float,
                 since_ns: int | None) -> ChallengerMove:
    """Give ``version`` the ``challenger`` alias and ``share`` of the traffic from ``since_ns`` on (a new canary);
    ``champion`` keeps serving the rest, and the run's verdict waits for the canary's end."""
    set_alias(tracking_uri, model_name, CHALLENGER, version)
    set_challenger_share(tracking_uri, model_name, share, since_ns=since_ns, new_canary=True)
    return ChallengerMove("canary", version, champion, share)


def promote_challenger(tracking_uri: str, model_name: str, version: str, run_id: str, *,
                       canary_asked: bool = False) -> ChallengerMove:
    """Make ``version`` the champion (under the promotion lock, recorded on the version: what ``mlplatform
    rollback`` walks back through) and give its training run ``run_id`` the verdict ``promoted``.

    Args:
        canary_asked: the brief asks for a canary, which needs a champion serving (the move says there was none).
    """
    previous = promote(tracking_uri, model_name, version)
    set_verdict(tracking_uri, run_id, "promoted")
    return ChallengerMove("promoted", version, version, previous_champion=previous,
                          canary=NO_CANARY_YET if canary_asked else None)
