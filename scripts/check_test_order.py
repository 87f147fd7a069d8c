"""Run tests in reverse or shuffled order, to find tests that pass only after another test has run.

    python scripts/check_test_order.py reverse mlplatform_tests/core/test_drift.py
    python scripts/check_test_order.py shuffle --order-seed 3 mlplatform_tests/core -m "not slow"

Any argument after the mode (and ``--order-seed``) goes to pytest unchanged. A test that fails here but passes in
the usual order leans on state an earlier test left behind (a module global, the working directory, an
environment variable, a file in a shared folder).
"""

import random
import sys

import pytest


class _Order:
    def __init__(self, mode: str, order_seed: int) -> None:
        self.mode, self.order_seed = mode, order_seed

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list) -> None:
        if self.mode == "reverse":
            items.reverse()
        else:
            random.Random(self.order_seed).shuffle(items)

    def pytest_report_header(self) -> str:
        return f"test order: {self.mode}" + (f" (order seed {self.order_seed})" if self.mode == "shuffle" else "")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("reverse", "shuffle"):
        print(__doc__)
        return 2
    mode, rest, order_seed = argv[0], argv[1:], 0
    if rest[:1] == ["--order-seed"]:
        order_seed, rest = int(rest[1]), rest[2:]
    return int(pytest.main(["-p", "no:cacheprovider", *rest], plugins=[_Order(mode, order_seed)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
