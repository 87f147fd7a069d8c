"""The online store's materialisation of a demo lake's feature table: CPU and wall time of ``materialize_online``.

Builds a fresh Feast store (registry and SQLite online store in a scratch folder) over the feature table of a data
directory that ``mlplatform demo`` filled, applies the brief's objects as the ``feature_store`` asset does, and
materialises the brief's whole range once, as the ``online_features`` asset does in the runner's single run. Run it
with two source trees (``PYTHONPATH=<tree>``) to compare implementations on the same data.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_online_write.py --data-dir /tmp/scale/d6

Prints one JSON line: entities written, CPU seconds (user+sys of this process), wall seconds, peak RSS, and a digest
of the online table (rows in key order) that must be equal across implementations.
"""

import argparse
import hashlib
import json
import resource
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core import tables
from mlplatform.core.feature_catalogue import feature_catalogue
from mlplatform.core.feature_store import (
    apply_feature_store,
    feast_config,
    feast_objects,
    feature_view_name,
    materialize_online,
)
from mlplatform.settings import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a data directory the demo has run on")
    parser.add_argument("--brief", type=Path, default=DEMO_BRIEF)
    parser.add_argument("--scratch", type=Path, default=None, help="where the fresh store goes (default: a temp dir)")
    args = parser.parse_args()

    import feast

    brief = load_brief(args.brief)
    table_path = Workspace(args.data_dir, brief.name).table(tables.features(brief.entity))
    scratch = Path(tempfile.mkdtemp(dir=args.scratch))
    try:
        store = feast.FeatureStore(config=feast_config(scratch / "repo", brief.name))
        apply_feature_store(store, feast_objects(
            table_path, brief.features, catalogue=feature_catalogue(brief), project=brief.name, entity=brief.entity,
            entity_key=brief.entity_key, owner=brief.owner))
        start = datetime.combine(brief.partition_start, datetime.min.time())
        end = datetime.combine(brief.partition_end, datetime.min.time())
        cpu, wall = time.process_time(), time.perf_counter()
        written = materialize_online(store, start, end, memory_limit="1500MB", temp_directory=scratch / "duckdb_tmp")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        online = scratch / "repo" / "online.db"
        digest = hashlib.sha256()
        with sqlite3.connect(online) as connection:
            name = f"{brief.name}_{feature_view_name(brief.entity)}"
            for row in connection.execute(f'SELECT entity_key, feature_name, value, value_text, event_ts, created_ts '
                                          f'FROM "{name}" ORDER BY entity_key, feature_name'):
                digest.update(repr(row).encode())
        print(json.dumps({
            "entities": written.entities, "written": written.written, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "online_table_sha256": digest.hexdigest()[:16],
        }))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
