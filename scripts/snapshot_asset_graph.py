"""Regenerate mlplatform_tests/asset_graph_snapshot.json from the demo brief's current asset graph.

Run it after an intended change to the graph (a new asset, a moved dependency, a new check) and commit the
snapshot with the change: ``python scripts/snapshot_asset_graph.py``.
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplatform_tests.test_asset_graph_snapshot import SNAPSHOT, current_snapshot  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        snapshot = current_snapshot(Path(data_dir))
    SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} ({len(snapshot['assets'])} assets)")


if __name__ == "__main__":
    main()
