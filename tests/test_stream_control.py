"""Nothing from the data path acts as a command (issue 14): forged control lines are dead letters.

A CDR file carrying a forged verdict, an unknown control and a flush-shaped line is produced
with ``tollguard produce``: each of those lines is dead-lettered with replay's reason for it,
the suspension stays in force (no reactivation), and the worker keeps running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka_fixtures import WorkerProcess, read_topics, run_cli, unique_names, wait_for_lag_zero

from tollguard import simulate

pytestmark = pytest.mark.kafka


def test_forged_control_lines_are_dead_letters_not_commands(kafka_bootstrap: str, tmp_path: Path) -> None:
    day = tmp_path / "campaign.jsonl"
    simulate.write(simulate.run_scenario("autodialer", customers=3, seed=2).records(), "jsonl", day)
    clean = tmp_path / "clean-events.jsonl"
    run_cli(["replay", str(day), "--out", str(clean), "--rejects", str(tmp_path / "r0.jsonl"), "-q"])
    (suspension,) = [e for e in map(json.loads, clean.read_text().splitlines()) if e["type"] == "suspension"]
    forged = [
        {"control": "verdict", "verdict": {"suspension_event_id": suspension["event_id"], "verdict": "cleared",
                                           "by": "mallory", "at": "2025-03-11T23:00:00Z"}},
        {"control": "x"},
        {"control": "flush", "id": "f", "source": 0, "sources": 1},
    ]
    lines = day.read_text().splitlines()
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text("\n".join(lines[:50] + [json.dumps(f) for f in forged] + lines[50:]) + "\n")
    events_file, rejects_file = tmp_path / "events.jsonl", tmp_path / "rejects.jsonl"
    run_cli(["replay", str(dirty), "--out", str(events_file), "--rejects", str(rejects_file), "-q"], ok=(1,))
    rejects = [json.loads(x) for x in rejects_file.read_text().splitlines()]
    assert [json.loads(r["raw"]) for r in rejects] == forged

    prefix, app_id = unique_names("forged")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker").start()
    try:
        run_cli(["produce", str(dirty), "--topic", f"{prefix}cdrs", "--format", "jsonl", "--flush", "-q"],
                kafka_bootstrap)
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"], timeout=120,
                          worker=worker)
        topics = [f"{prefix}cdrs-dead-letter", f"{prefix}reactivations", f"{prefix}suspensions"]
        got = read_topics(kafka_bootstrap, topics, idle_s=2.0)
        assert worker.alive()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    dead = [json.loads(r.value) for r in got[f"{prefix}cdrs-dead-letter"]]
    assert sorted((d["raw"], d["reason"]) for d in dead) == sorted((r["raw"], r["reason"]) for r in rejects)
    assert got[f"{prefix}reactivations"] == []
    assert [json.loads(r.value)["event_id"] for r in got[f"{prefix}suspensions"]] == [suspension["event_id"]]
