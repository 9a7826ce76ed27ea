"""Hot reload on a real broker: a running worker takes a changed rules file without a restart.

One worker (``--rules FILE``, allowed lateness 0 so each CDR is decided as it arrives):

1. rules ``v1``; acme dials seven +979 numbers: an alert (``v1``);
2. the file is replaced by an invalid one: the worker logs the refusal with its line and field,
   ``/metrics`` counts it and still names ``v1``; globex's +979 calls then get an alert marked ``v1``;
3. the file is replaced by a valid ``v2``: the log says from which event time, ``/metrics`` names
   ``v2``; acme's next five +979 calls get a suspension marked ``v2`` whose evidence counts all ten
   calls of the hour (its state survived the reload), from the same worker process; a replay of
   the same input with ``--rules-change`` at the event time the worker logged gives the same events;
4. a SIGHUP makes a file live whose size and modification time did not move (the poll misses it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka_fixtures import WorkerProcess, free_port, read_topics, run_cli, unique_names

from streams.lastgood import RULES_TOPIC, load_last_good
from tollguard.cdr import CallDetailRecord
from tollguard.simulate import write

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
RULES = """\
version: {version}
engine:
  allowed_lateness_s: 0
customers:
  acme: {{country: IT}}
  globex: {{country: IT}}
"""
INVALID = RULES.format(version="v-bad") + "detectors:\n  spend:\n    hour_critical: -5\n"


def call(customer: str, i: int) -> CallDetailRecord:
    start = T0 + timedelta(minutes=i)
    cli = "+390212345600" if customer == "acme" else "+390298765400"
    return CallDetailRecord(
        call_id=f"{customer}-{i}", customer_id=customer, direction="outbound", caller=cli,
        callee=f"+9791234567{i:02d}", did=cli, start=start, answer=None, end=start + timedelta(seconds=20),
        duration_s=20.0, billsec_s=0.0, disposition="NO ANSWER", hangup_cause=19,
    )


def replace(path: Path, text: str) -> None:
    """Replace the file as an editor or a deployment does (write aside, rename over)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def wait_for(what: str, check: Callable[[], bool], worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert worker.alive(), f"worker died:\n{worker.log()[-4000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.log()[-4000:]}"
        time.sleep(0.3)


def test_a_running_worker_refuses_a_bad_file_and_takes_a_good_one(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, app_id = unique_names("reload")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"), encoding="utf-8")
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker",
                           extra_args=("--rules", str(rules), "--web-port", str(port))).start()
    topics = [f"{prefix}alerts", f"{prefix}suspensions"]

    def events() -> list[dict[str, object]]:
        got = read_topics(kafka_bootstrap, topics, idle_s=0.5)
        return [json.loads(r.value) for t in topics for r in got[t]]

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            return page.read().decode()

    def produce(name: str, records: list[CallDetailRecord]) -> None:
        path = tmp_path / f"{name}.jsonl"
        write(records, "jsonl", path)
        run_cli(["produce", str(path), "--broker", kafka_bootstrap, "--topic", f"{prefix}cdrs", "-q"],
                kafka_bootstrap)

    try:
        produce("acme-1", [call("acme", i) for i in range(7)])
        wait_for("acme's alert", lambda: len(events()) == 1, worker)
        v1 = events()[0]["rules_version"]
        assert str(v1).startswith("v1+")

        replace(rules, INVALID)
        wait_for("the refusal", lambda: "rules reload refused" in worker.log(), worker)
        assert f"{rules}:9: detectors.spend.hour_critical: " in worker.log()
        page = metrics()
        assert "tollguard_rules_reload_failures_total 1.0" in page
        assert f'tollguard_rules_info{{version="{v1}"}} 1.0' in page
        produce("globex", [call("globex", i) for i in range(3)])
        wait_for("globex's alert", lambda: len(events()) == 2, worker)

        replace(rules, RULES.format(version="v2"))
        wait_for("v2 live", lambda: "rules v2+" in worker.log(), worker)
        assert "live from event time 2026-11-30T09:06:20+00:00 (file changed; was " in worker.log()
        page = metrics()
        assert 'tollguard_rules_info{version="v2+' in page and f'version="{v1}"' not in page
        assert "tollguard_rules_reload_failures_total 1.0" in page and "tollguard_rules_reloads_total 1.0" in page
        # the reloaded file is now the group's last good rules (a restart that finds the file invalid runs on it)
        kept_topic, broker = f"{prefix}{RULES_TOPIC}", f"kafka://{kafka_bootstrap}"
        wait_for("v2 kept", lambda: "kept as the last good rules on " in worker.log(), worker)
        saved = load_last_good(broker, kept_topic, app_id)
        assert saved is not None and (saved.text, saved.source) == (RULES.format(version="v2"), str(rules))
        assert saved.version.startswith("v2+") and f"rules {saved.version} live from" in worker.log()
        produce("acme-2", [call("acme", i) for i in range(7, 12)])
        wait_for("acme's suspension", lambda: len(events()) == 3, worker)
        got = sorted(events(), key=lambda e: str(e["occurred_at"]))
        assert [(e["type"], e["customer_id"], e["occurred_at"], str(e["rules_version"]).split("+")[0])
                for e in got] == [
            ("alert", "acme", "2026-11-30T09:02:20Z", "v1"),
            ("alert", "globex", "2026-11-30T09:02:20Z", "v1"),
            ("suspension", "acme", "2026-11-30T09:09:20Z", "v2"),
        ]
        suspension = got[2]
        assert suspension["evidence"]["attempts"] == 10  # 7 calls before the reload, 3 after: state kept
        assert worker.alive() and worker.starts == 1  # no restart

        # replay of the same input with the change at the event time of the worker's log: the same events
        (at,) = re.findall(r"rules v2\+\w+ live from event time (\S+) ", worker.log())
        (tmp_path / "v1.yaml").write_text(RULES.format(version="v1"), encoding="utf-8")
        (tmp_path / "v2.yaml").write_text(RULES.format(version="v2"), encoding="utf-8")
        out = tmp_path / "replayed.jsonl"
        run_cli(["replay", *(str(tmp_path / f"{n}.jsonl") for n in ("acme-1", "globex", "acme-2")), "--rules",
                 str(tmp_path / "v1.yaml"), "--rules-change", f"{at}={tmp_path / 'v2.yaml'}", "--out", str(out),
                 "--rejects", str(tmp_path / "rejects.jsonl"), "-q"])
        replayed = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]

        def same(evs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return sorted((e["event_id"], e["type"], e["rules_version"], e["reason"]) for e in evs)

        assert same(replayed) == same(got)

        # SIGHUP re-reads the file even when its size and modification time did not move
        stat = rules.stat()
        staged = tmp_path / "rules.v3.tmp"  # written aside and renamed over: the poll never sees a moved time
        staged.write_text(RULES.format(version="v3"), encoding="utf-8")
        os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert staged.stat().st_size == stat.st_size
        os.replace(staged, rules)
        time.sleep(2.5)
        assert "rules v3+" not in worker.log()  # the poll saw nothing
        assert worker.proc is not None
        os.kill(worker.proc.pid, signal.SIGHUP)
        wait_for("v3 live on SIGHUP", lambda: "(SIGHUP; was v2+" in worker.log(), worker)
        assert worker.alive()
    finally:
        worker.stop()
