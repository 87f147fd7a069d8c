"""Feast is imported without typeguard's rewrites of its classes (typeguard is left as it was for everything else) and
without torch, which its ``get_torch`` imports when first asked for.

Run in a fresh interpreter: the test process may have imported Feast already (another test, or a plugin)."""

import subprocess
import sys

PROBE = """
import typeguard
real = typeguard.typechecked
import mlplatform.core.feature_store
import feast
assert typeguard.typechecked is real, "typeguard.typechecked was not put back"
names = feast.Entity.__init__.__code__.co_names
assert "check_argument_types_internal" not in names, names
entity = feast.Entity(name="customer", join_keys=["customer_id"])
assert entity.join_key == "customer_id"
import sys
assert "torch" not in sys.modules, "Feast imported torch when it loaded"
from feast.torch_wrapper import get_torch
assert get_torch().tensor([1.0]).item() == 1.0 and "torch" in sys.modules
print("ok")
"""


def test_feast_classes_are_not_rewritten_typeguard_is_restored_and_torch_waits_until_asked_for():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
