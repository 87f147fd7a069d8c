"""The champion / challenger traffic split: each entity lands on one arm, stably, by a salted hash."""

import hashlib
from typing import Literal

Arm = Literal["champion", "challenger"]


def bucket(entity_id: object, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) for an entity: the same id always lands in the same place."""
    digest = hashlib.blake2b(f"{salt}:{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_arm(entity_id: object, challenger_share: float, salt: str) -> Arm:
    """``challenger`` for the ``challenger_share`` of entities whose bucket is lowest, else ``champion``.

    Raising the share keeps every entity already on the challenger there (buckets below 5% are below 25%).
    """
    return "challenger" if bucket(entity_id, salt) < challenger_share else "champion"
