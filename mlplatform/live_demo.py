"""The living demo (``mlplatform demo --live``): the retraining loop running by itself under the Dagster daemon.

The demo's first months train the first champion (in this process, recorded on the instance the UI shows). Then
``dagster dev`` (webserver and daemon) and the serving app start on 127.0.0.1, every sensor is switched on, and
the later months are replayed one by one: a traffic replayer sends each month's requests to ``/predict`` (each
request carries the moment it stands for, ``X-Replay-Time``, which the app logs when started with
``MLPLATFORM_REPLAY_CLOCK``), then the month's batch file appears and its labels arrive (those whose
``label.delay_days`` has passed by the month's end). Everything after that is the platform's own automation:
ingestion, monitoring, the drift and decay sensors, retraining, the promotion gate, the canary on served traffic
and the A/B analysis. The terminal prints what happened as the runs finish.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

from mlplatform import asset_names
from mlplatform.brief import DEMO_BRIEF, load_tabular_brief
from mlplatform.settings import Settings, Workspace

# The last month replayed: the demo's ten months plus the four the generator adds for the live demo (from 2025-11
# the basic plan's price rises, a concept shift). The months before the replayed ones train the first champion.
LAST_MONTH = date(2026, 2, 1)
DEMO_END = date(2025, 11, 1)  # the default demo's months end here; later ones exist only in the live demo
ACTIVE = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
# The days of a month whose traffic is replayed, one request per active customer each: twice a week, so a canary
# walks 5% -> 25% -> 50% in its first week and its arms gather labelled predictions for the A/B test.
REPLAY_DAYS = (2, 6, 10, 14, 18, 22, 26)
NOTIFICATIONS = "notifications.jsonl"


@dataclass(frozen=True)
class LiveOptions:
    """How the live demo runs.

    Attributes:
        events: size of the generated demo (events over the ten months).
        months: how many of the last months are replayed (the earlier ones train the first champion).
        ui: start the Dagster webserver with the daemon (``dagster dev``); False runs ``dagster-daemon`` alone.
        ui_port / serve_port: ports on 127.0.0.1.
        interval_s: how often the sensors look (monitoring.sensor_interval_s and serving_interval_s).
        canary_min_rows: predictions a canary step needs before it moves on (rollout.min_rows).
        tuning_trials: Optuna trials for the first champion (retrains reuse its hyperparameters).
        settle_s: how long no run may be queued or running before a month counts as done.
        timeout_s: the longest a month may take.
    """

    events: int = 100_000
    months: int = 4
    seed: int = 7
    ui: bool = True
    ui_port: int = 3000
    serve_port: int = 8000
    interval_s: int = 2
    canary_min_rows: int = 50
    tuning_trials: int = 2
    settle_s: float = 3.0
    timeout_s: float = 900.0


@dataclass
class LiveResult:
    """What the live demo saw: every run the loop made (job, status, tags) and every notification."""

    runs: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    wall_s: float = 0.0


def month_start(day: date, months: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def live_brief(data_dir: Path, options: LiveOptions) -> Path:
    """The demo brief (``briefs/churn_demo.yaml``) as the living loop runs it, written beside the data. Sources,
    features, label, metrics, thresholds, promotion gate, golden set and cost are the demo brief's; what differs,
    and why:

    * ``partition_end``: the generated months run to :data:`LAST_MONTH` (the four after the demo's ten carry the
      basic plan's price rise the loop has to find).
    * ``split``: rolling, the latest labelled month tests, the one before validates and the two before that
      train. The demo's fixed May-August hold-out would make every retrain fit the same window; two training
      months let a retrain learn the new world one month after it began (a longer window dilutes it).
    * ``monitoring``: ``period: latest_batch`` (each batch against the training window, instead of the demo's
      fixed September-October window), ``retrain_rollout: canary`` (the method: a retrain serves a canary before
      it is promoted) and sensors every ``interval_s`` seconds instead of every 30.
    * ``training``: ``tuning_trials`` trials for the first champion (retrains reuse its hyperparameters), no
      torch candidate: each retrain trains LightGBM candidates only, to keep a month within a minute or two.
    * ``rollout.min_rows``: a canary step needs ``canary_min_rows`` predictions (200 in the demo brief): 5% of a
      day's replayed traffic is under 100 requests. ``rollout.mde``: 0.10 F1 instead of 0.02. The A/B test counts
      customers (a customer's weekly predictions are one unit) and its sample grows with 1/mde²: at 0.02 it asks
      for thousands of labelled customers per arm, at 0.08 for 520-680 (the spread decides), at 0.10 for 330-430,
      while the replay's ~1,400 active customers put about 470 labelled ones in the challenger's arm at 50%. The
      price rise is worth about 0.1 F1, so the test is sized to see an effect of that order (a smaller gain cannot
      ship: ship needs lift > mde).
    * ``fairness``: the reweighed LightGBM is the one mitigation (the threshold optimiser needs the demo's
      four-month hold-out), and both limits are waived in the open (the card shows WAIVED): a one-month hold-out
      of the replay has too few churners per age band to resolve them. ``mlplatform demo`` judges fairness
      without waivers.
    * ``rag`` left out: question answering is not part of the loop.
    """
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["partition_end"] = month_start(LAST_MONTH, 1).isoformat()
    raw["split"] = {"rolling": True, "train_months": 2, "validation_months": 1, "test_months": 1}
    monitoring = {k: v for k, v in raw.get("monitoring", {}).items() if k not in ("current_start", "current_end")}
    raw["monitoring"] = {**monitoring, "period": "latest_batch", "retrain_rollout": "canary",
                         "sensor_interval_s": options.interval_s, "serving_interval_s": options.interval_s}
    raw["training"] = {**raw.get("training", {}), "tuning_trials": options.tuning_trials, "torch": False}
    raw["rollout"] = {**raw.get("rollout", {}), "min_rows": options.canary_min_rows, "mde": 0.1}
    reason = ("The live demo judges each retrain on a one-month hold-out of a replayed sample: too few customers "
              "and churners per age band to resolve the limit. mlplatform demo judges fairness without waivers.")
    raw["fairness"] = {"mitigation": ["reweigh"], "waivers": [
        {"attribute": attribute, "metric": metric, "reason": reason}
        for attribute in raw.get("protected_attributes", []) for metric in ("disparate_impact", "equal_opportunity")]}
    raw.pop("rag", None)
    path = data_dir / "live_brief.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def release(full: Path, inputs: Path, until: date, delay_days: int) -> None:
    """Make the inputs what is known on ``until``: the customers, each month's events before it, and the labels
    whose outcome window (``delay_days``) has passed."""
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "events").mkdir(exist_ok=True)
    if not (inputs / "customers.csv").exists():
        shutil.copy2(full / "customers.csv", inputs / "customers.csv")
    for month_file in sorted((full / "events").glob("*.parquet")):
        target = inputs / "events" / month_file.name
        if date.fromisoformat(f"{month_file.stem}-01") < until and not target.exists():
            shutil.copy2(month_file, inputs / "events" / f".{month_file.name}.tmp")
            os.replace(inputs / "events" / f".{month_file.name}.tmp", target)  # the batch appears whole
    labels = pl.read_csv(full / "labels.csv", try_parse_dates=True)
    known = labels.filter(pl.col("snapshot_date") + pl.duration(days=delay_days) <= pl.lit(until))
    tmp = inputs / ".labels.csv.tmp"
    known.write_csv(tmp)
    os.replace(tmp, inputs / "labels.csv")


class Stack:
    """The processes of the demo: ``dagster dev`` (or the daemon alone) and the serving app, each in a process
    group of its own, stopped together."""

    def __init__(self, settings: Settings, home: Path, options: LiveOptions, log_dir: Path) -> None:
        self.settings, self.home, self.options, self.log_dir = settings, home, options, log_dir
        self.env = {**os.environ, "DAGSTER_HOME": str(home), "MLPLATFORM_DATA_DIR": str(settings.data_dir),
                    "MLPLATFORM_BRIEF": str(settings.brief_path), "MLPLATFORM_REPLAY_CLOCK": "1",
                    "MLPLATFORM_REGISTRY_POLL_S": "1", "PYTHONWARNINGS": "ignore"}
        self.processes: list[subprocess.Popen] = []

    def _tool(self, name: str) -> str:
        found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
        if found is None:
            raise RuntimeError(f"the {name} command is not installed in this environment; run `make install`")
        return found

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def start_dagster(self) -> None:
        """The daemon (and the UI), sensors still off: they start while the first champion trains."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.options.ui:
            self._start("dagster", [self._tool("dagster"), "dev", "-m", "mlplatform.definitions",
                                    "-h", "127.0.0.1", "-p", str(self.options.ui_port)])
        else:
            self._start("dagster-daemon", [self._tool("dagster-daemon"), "run", "-m", "mlplatform.definitions"])

    def start_serving(self) -> None:
        """The serving app, once a champion and its online features exist."""
        self._start("serving", [self._tool("mlplatform"), "serve", "--host", "127.0.0.1", "--port",
                                str(self.options.serve_port), "--data-dir", str(self.settings.data_dir),
                                "--brief", str(self.settings.brief_path)])

    def switch_on_sensors(self) -> subprocess.Popen:
        """Every sensor of the code location on (the schedule stays off), through Dagster's own CLI; returns the
        command's process (:meth:`sensors_on` waits for it)."""
        return subprocess.Popen([self._tool("dagster"), "sensor", "start", "--start-all", "-m",
                                 "mlplatform.definitions"], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    @staticmethod
    def sensors_on(command: subprocess.Popen) -> None:
        _, error = command.communicate(timeout=180)
        if command.returncode:
            raise RuntimeError(f"dagster sensor start failed: {error.decode(errors='replace')[-2000:]}")

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a demo process exited with {process.returncode}; see {self.log_dir}")
            with suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", self.options.serve_port, timeout=2)
                connection.request("GET", "/ready")
                if connection.getresponse().status == 200:
                    return
            time.sleep(1)
        raise TimeoutError(f"the serving app was not ready within {timeout_s:.0f} s; see {self.log_dir}")

    def stop(self) -> None:
        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def replay_traffic(port: int, key: str, customers: list[int], day: date, workers: int = 4) -> int:
    """One ``/predict`` per customer, stamped at noon of ``day``; returns how many were answered."""
    stamp = datetime.combine(day, datetime.min.time()).replace(hour=12).isoformat()
    chunks = [customers[i::workers] for i in range(workers)]

    def send(chunk: list[int]) -> int:
        connection, answered = http.client.HTTPConnection("127.0.0.1", port, timeout=10), 0
        for customer in chunk:
            connection.request("POST", "/predict", body=json.dumps({key: customer}),
                               headers={"Content-Type": "application/json", "X-Replay-Time": stamp})
            response = connection.getresponse()
            response.read()
            answered += response.status == 200
        connection.close()
        return answered

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(send, chunks))


class Timeline:
    """Prints the loop's story as runs finish: each run with its trigger and what it decided, and each notice."""

    def __init__(self, instance, workspace: Workspace, say: Callable[[str], None], started: float) -> None:
        self.instance, self.workspace, self.say, self.started = instance, workspace, say, started
        self.reported: set[str] = set()
        self.notices = 0
        self.result = LiveResult()

    def line(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.started:5.0f} s] {text}")
        sys.stdout.flush()  # a story, not a log: each line shows when it happens, also when piped to a file

    def active(self) -> list:
        import dagster as dg

        return list(self.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus[s] for s in ACTIVE])))

    def poll(self) -> None:
        import dagster as dg

        # One query a second, oldest first (a run record per finished run would be one query each).
        finished = self.instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS,
                                                                         dg.DagsterRunStatus.FAILURE,
                                                                         dg.DagsterRunStatus.CANCELED]),
                                                 ascending=True)
        for record in finished:
            run = record.dagster_run
            if run.run_id in self.reported:
                continue
            self.reported.add(run.run_id)
            took = (record.end_time - record.start_time) if record.end_time and record.start_time else 0.0
            self.result.runs.append({"created": record.create_timestamp.timestamp(), "run_id": run.run_id,
                                     "seconds": took,
                                     "job": run.job_name, "status": run.status.value,
                                     "trigger": run.tags.get("mlplatform/trigger"),
                                     "reason": run.tags.get("mlplatform/reason"),
                                     "partition": run.tags.get("dagster/partition"),
                                     "source_run": run.tags.get("mlplatform/source_run")})
            if run.tags.get("mlplatform/live") == "setup":
                continue
            self.line(f"{run.job_name} {run.status.value.lower()}"
                      + (f" ({run.tags['mlplatform/trigger']}: {run.tags.get('mlplatform/reason', '')})"
                         if "mlplatform/trigger" in run.tags else "") + self._what(run))
        path = self.workspace.root / NOTIFICATIONS
        if path.exists():
            entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for entry in entries[self.notices:]:
                self.result.notifications.append(entry)
                self.line("notice: " + _notice_text(entry))
            self.notices = len(entries)

    def where_time_went(self) -> str:
        """Seconds spent in the runs, by job (setup: the first champion's in-process runs)."""
        spent: dict[str, list[float]] = {}
        for run in self.result.runs:
            job = "setup" if run["trigger"] is None and run["job"] in ("ingest_job", "full_run") else run["job"]
            spent.setdefault(job, []).append(run["seconds"])
        return ", ".join(f"{job} {len(times)}x {sum(times):.0f} s" for job, times in spent.items())

    def _what(self, run) -> str:
        """What a run found or decided, from its materialisations and checks."""
        import dagster as dg

        said = []
        for record in self.instance.get_records_for_run(
                run.run_id, of_type={dg.DagsterEventType.ASSET_MATERIALIZATION,
                                     dg.DagsterEventType.ASSET_CHECK_EVALUATION}).records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                check = event.event_specific_data
                if check.check_name == "promotion_gate":
                    said.append(f"promotion gate: {check.description}")
                continue
            materialization = event.event_specific_data.materialization
            name, meta = materialization.asset_key.to_user_string(), materialization.metadata
            if name == asset_names.DRIFT_REPORT and "max_psi" in meta:
                said.append(f"drift over {meta['period'].value}: max PSI {meta['max_psi'].value:.2f}")
            elif name == asset_names.PERFORMANCE_REPORT and "reason" in meta:
                said.append(f"decay {meta['severity'].value}: {meta['reason'].value}")
            elif name == asset_names.PERFORMANCE_REPORT and "relative_drop" in meta:
                said.append(f"decay {meta['severity'].value} (primary metric down {meta['relative_drop'].value:.1%} "
                            "on the new labels)")
            elif name == asset_names.CHAMPION_MODEL:
                said.append(f"champion_model: {meta['action'].value}")
            elif name == asset_names.SERVING_ROLLOUT:
                said.append(f"rollout: {meta['action'].value}"
                            + (f", A/B {meta['ab_decision'].value}" if "ab_decision" in meta else ""))
        return "" if not said else " — " + "; ".join(said)


def _notice_text(entry: dict) -> str:
    if entry.get("event") == "alert":
        return f"alert {entry.get('name')} {entry.get('status')}: {entry.get('message', '')}"
    if entry.get("event") == "rollout":
        return f"{entry['action']} of version {entry.get('version')}: {entry.get('reason', '')}"
    promotion = entry.get("promotion") or {}
    outcome = ("promotion gate refused version " + str(promotion.get("challenger_version"))
               if promotion and not promotion.get("promoted") else
               f"version {promotion.get('challenger_version')} {promotion.get('rollout') or 'gated'}"
               if promotion else "")
    return f"retrain {entry.get('status')} ({entry.get('trigger')}: {entry.get('reason')}) {outcome}".strip()


def _setup_champion(settings: Settings, instance, keys: list[str], say: Callable[[str], None]) -> None:
    """The first champion, in this process: each initial batch ingested, then everything else (full_run)."""
    from mlplatform.definitions import build_definitions

    defs = build_definitions(settings)
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    tags = {"mlplatform/live": "setup"}
    ingest = defs.resolve_job_def("ingest_job")
    for key in keys:
        ingest.execute_in_process(partition_key=key, instance=instance, run_config=run_config, tags=tags)
    # Monitoring starts with the first replayed batch: the sensors, once on, must not take the champion's own test
    # month for news.
    # Only what the champion needs (its model card, reports and batch predictions come with the first retrain).
    import dagster as dg

    needed = (dg.AssetSelection.assets(asset_names.CHAMPION_MODEL).upstream().required_multi_asset_neighbors()
              .resolve(defs.resolve_asset_graph()))
    full_run = defs.resolve_job_def("full_run")
    selected = [k for k in full_run.asset_layer.selected_asset_keys if k in needed]
    result = full_run.execute_in_process(instance=instance, run_config=run_config, tags=tags, raise_on_error=False,
                                         asset_selection=selected)
    failed = [str(e.step_key) for e in result.get_step_failure_events()]
    if not result.asset_materializations_for_node(asset_names.CHAMPION_MODEL):
        raise RuntimeError(f"no first champion: the run failed at {failed or 'a gate'}; see the run in the UI")
    if failed:
        say(f"  (the first run's steps {', '.join(failed)} failed; the champion is in place, see the run in the UI)")


def _wait_for(timeline: Timeline, done: Callable[[], bool], settle_s: float, timeout_s: float) -> None:
    """Poll until ``done()`` and no run has been queued or running for ``settle_s`` seconds."""
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        timeline.poll()
        if done() and not timeline.active():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return
        else:
            quiet_since = None
        time.sleep(1)
    raise TimeoutError(f"the loop did not settle within {timeout_s:.0f} s; runs still active: "
                       f"{[r.job_name for r in timeline.active()]}")


def _monitored(timeline: Timeline, key: str) -> Callable[[], bool]:
    def done() -> bool:
        return any(r["job"] == "monitor_job" and r["reason"] == f"batch {key} ingested" for r in timeline.result.runs)
    return done


def _answered(timeline: Timeline, settings: Settings, brief_name: str, key: str) -> Callable[[], bool]:
    """Batch ``key`` is monitored, the retrain sensors have read the newest drift and performance reports (or
    hold them while a canary runs) and every finished retrain is announced: nothing the batch set off is still to
    come once no run is queued or running either."""
    import dagster as dg

    monitored = _monitored(timeline, key)

    def read(sensor: str, report: str) -> bool:
        records = timeline.instance.fetch_materializations(dg.AssetKey(report), limit=1).records
        if not records:
            return True
        for state in timeline.instance.all_instigator_state():
            if state.instigator_name == sensor:
                cursor = state.sensor_instigator_data.cursor if state.sensor_instigator_data else None
                return cursor is not None and int(cursor) >= records[0].storage_id
        return False

    def announced() -> bool:
        finished = {r["run_id"] for r in timeline.result.runs
                    if r["job"] == "retrain_job" and r["status"] in ("SUCCESS", "FAILURE")}
        notified = {n.get("run_id") for n in timeline.result.notifications if n.get("event") == "retrain"}
        return finished <= notified

    def done() -> bool:  # what the timeline already holds first; the instance and the registry only then
        return monitored() and announced() and (read("drift_sensor", asset_names.DRIFT_REPORT)
                                                 and read("performance_sensor", asset_names.PERFORMANCE_REPORT)
                                                 or _canary_running(settings, brief_name))
    return done


def _guarded_since(timeline: Timeline, moment: float) -> Callable[[], bool]:
    def done() -> bool:
        return any(r["job"] == "serving_job" and r["created"] > moment for r in timeline.result.runs)
    return done


def _canary_running(settings: Settings, brief_name: str, below: float | None = None) -> bool:
    """A challenger serves a share of the traffic (a share under ``below``, when given)."""
    from mlplatform.core.model_families import registered_model_name
    from mlplatform.core.rollout.registry import rollout_state

    state = rollout_state(Workspace(settings.data_dir, brief_name).mlflow_uri, registered_model_name(brief_name))
    return state.canary_running and (below is None or state.challenger_share < below)


@contextmanager
def _instance(home: Path) -> Iterator:
    import dagster as dg

    from mlplatform.runner import _write_instance_config

    home.mkdir(parents=True, exist_ok=True)
    # The daemon takes queued runs every second, not every 5 s: each month of the loop is a chain of runs, each
    # started by the one before it (a batch's ingestion, its monitoring, a retrain, the serving guard).
    (home / "dagster.yaml").write_text(yaml.safe_dump({"run_queue": {"dequeue_interval_seconds": 1}}))
    _write_instance_config(home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def run_live(data_dir: Path, options: LiveOptions = LiveOptions(), say: Callable[[str], None] = print) -> LiveResult:
    """Run the living demo in ``data_dir`` (made empty first) and return what happened."""
    from mlplatform.core.demo_data import generate_demo

    started = time.monotonic()
    data_dir = data_dir.resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    brief_path = live_brief(data_dir, options)
    brief = load_tabular_brief(brief_path, "the live demo")
    settings = Settings(data_dir=data_dir, brief_path=brief_path)
    full, inputs = data_dir / "replay" / brief.name, data_dir / "inputs" / brief.name
    extra = (LAST_MONTH.year - DEMO_END.year) * 12 + LAST_MONTH.month - DEMO_END.month + 1
    manifest = generate_demo(full, n_events=options.events, seed=options.seed, extra_months=extra)
    first_replayed = month_start(LAST_MONTH, 1 - options.months)
    release(full, inputs, first_replayed, brief.label.delay_days)
    say(f"Demo data: {manifest.n_customers:,} customers, {manifest.n_events:,} events; months before "
        f"{first_replayed:%Y-%m} train the first champion, {options.months} later months are replayed.")
    home, ws = data_dir / "dagster_home", Workspace(data_dir, brief.name)
    labels = pl.read_csv(full / "labels.csv", try_parse_dates=True)
    say(f"[{time.monotonic() - started:5.0f} s] the price of the basic plan rises from 2025-11; months from "
        f"{DEMO_END:%Y-%m} exist only in the live demo")
    with _instance(home) as instance:
        keys = sorted(f.stem for f in (inputs / "events").glob("*.parquet"))
        stack = Stack(settings, home, options, data_dir / "logs")
        try:
            stack.start_dagster()
            say(f"[{time.monotonic() - started:5.0f} s] starting the Dagster daemon"
                + (f" and the UI (http://127.0.0.1:{options.ui_port})" if options.ui else "")
                + f"; training the first champion on {keys[0]} .. {keys[-1]} (rolling split: the latest labelled "
                "month tests, the one before validates, the two before that train) …")
            _setup_champion(settings, instance, keys, say)
            timeline = Timeline(instance, ws, say, started)
            timeline.poll()
            timeline.line(f"first champion promoted; starting serving (http://127.0.0.1:{options.serve_port}) …")
            stack.start_serving()
            switching = stack.switch_on_sensors()  # while serving loads the champion
            stack.wait_ready()
            stack.sensors_on(switching)
            timeline.line("sensors on: new_data_sensor, monitor_new_batch, drift_sensor, performance_sensor, "
                          "serving_guard_sensor, notify_retrain_*")
            steps = brief.rollout.canary_steps
            widest = steps[-2] if len(steps) > 1 else 0.0  # the widest canary share traffic alone can reach
            for offset in range(options.months):
                month = month_start(first_replayed, offset)
                active = labels.filter(pl.col("snapshot_date") == month)[brief.entity_key].to_list()
                timeline.line(f"— {month:%Y-%m}: replaying traffic for {len(active):,} active customers —")
                for day in REPLAY_DAYS:
                    sent = time.time()
                    answered = replay_traffic(options.serve_port, brief.entity_key, active, month.replace(day=day))
                    timeline.line(f"  {month:%Y-%m}-{day:02d}: {answered:,} predictions served")
                    # The serving guard judges this traffic before the next day's, while the canary can still widen
                    # on traffic alone. Its last step (all traffic) needs the A/B verdict on labelled predictions,
                    # and labels come with the month's batch: a canary at the step before it holds until then, so
                    # the days go on without waiting (the guard's runs still follow the traffic).
                    if _canary_running(settings, brief.name, below=widest):
                        _wait_for(timeline, _guarded_since(timeline, sent), settle_s=2, timeout_s=options.timeout_s)
                # The batch arrives with the month's labels: at the month's end, or once their outcome window has
                # passed (February is shorter than label.delay_days), so the A/B test of the month's traffic can decide.
                following = max(month_start(month, 1), month + timedelta(days=brief.label.delay_days))
                release(full, inputs, following, brief.label.delay_days)
                timeline.line(f"  batch {month:%Y-%m} arrived, with the labels known by {following}")
                _wait_for(timeline, _answered(timeline, settings, brief.name, f"{month:%Y-%m}"), options.settle_s,
                          options.timeout_s)
                timeline.line(f"— {month:%Y-%m} done —")
            timeline.poll()
        finally:
            stack.stop()
    timeline.result.wall_s = time.monotonic() - started
    say(f"\nFinished in {timeline.result.wall_s:.0f} s. Time in runs (the rest is process starts, traffic and "
        f"sensor intervals): {timeline.where_time_went()}.")
    say("Where to look:")
    say(f"  runs, sensors and their ticks: dagster dev (mlplatform ui --data-dir {data_dir} --brief {brief_path})")
    say(f"  notifications:  {ws.root / NOTIFICATIONS}")
    say(f"  A/B report:     {ws.reports_dir / 'ab_test_report.yaml'}")
    say(f"  prediction log: {ws.root / 'predictions'}  (mlplatform sql \"SELECT arm, model_version, count(*) FROM "
        f"'{ws.root / 'predictions'}/part-*.parquet' GROUP BY ALL\")")
    return timeline.result
