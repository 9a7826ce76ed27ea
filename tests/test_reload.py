"""Rules changes without a restart: the engine, replay's ``--rules-change`` and the worker's reloader.

The premium-destination episode of tests/test_authorize.py (acme dials twelve +979 numbers,
one a minute from 09:00:20; alert at 09:02:20, suspension at 09:09:20) is run with a rules
change in the middle of it: the alert carries the first version, the suspension the second,
and the suspension still comes, so the detector's evidence survived the change. A change of
the detector's window restarts its state instead. The worker's :class:`RulesReloader` refuses an
invalid file (line and field in the log, counted once, last good rules kept) and makes a valid
one live. The same on a real broker is in tests/test_stream_reload.py.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from test_authorize import RULES_YAML, premium_episode
from typer.testing import CliRunner

from engine.core import Engine
from engine.registry import parse_rules
from engine.runner import Runner
from streams.cli import app
from streams.reload import RulesReloader
from streams.replay import Replay
from tollguard.events import Event
from tollguard.rules import Rules
from tollguard.simulate import write

V1 = RULES_YAML.replace("version: authorize-test", "version: v1")
V2 = RULES_YAML.replace("version: authorize-test", "version: v2")
#: 09:08 UTC on the episode's day: after its alert was decided (09:02:20 + 300 s of allowed lateness), before
#: its suspension (decided at the end of input).
MIDWAY = datetime(2026, 11, 30, 9, 8, tzinfo=UTC).timestamp()


def _versions(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(str(e.type), e.occurred_at.strftime("%H:%M:%S"), e.rules_version.split("+")[0]) for e in events]


def _run(change: str | None) -> tuple[list[Event], Engine]:
    engine = Engine(parse_rules(V1))
    runner = Runner(engine)
    events: list[Event] = []
    for cdr in premium_episode():
        if change is not None and cdr.end.timestamp() > MIDWAY and engine.rules.version.startswith("v1"):
            engine.set_rules(parse_rules(change))
        events += runner.take_record(cdr, "test", None, "").events
    return events + runner.flush().events, engine


def test_a_rules_change_keeps_the_detectors_evidence() -> None:
    events, engine = _run(V2)
    assert _versions(events) == [("alert", "09:02:20", "v1"), ("suspension", "09:09:20", "v2")]
    assert engine.window_restarts == {}
    unchanged, _ = _run(None)
    assert [(e.event_id, e.reason) for e in events] == [(e.event_id, e.reason) for e in unchanged]


def test_a_detector_whose_window_changed_starts_it_cleanly() -> None:
    shorter = V2 + "detectors:\n  premium_destination:\n    window_s: 1800\n"
    events, engine = _run(shorter)
    assert engine.window_restarts == {"premium_destination": 2}  # acme and globex, each at its next CDRs
    # the calls before the change are forgotten: the 4 after it stay below the critical level (10 calls)
    assert _versions(events) == [("alert", "09:02:20", "v1")]


def test_replay_rules_change_at_an_event_time(tmp_path: Path) -> None:
    data, v1, v2 = tmp_path / "calls.jsonl", tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    write(premium_episode(), "jsonl", data)
    v1.write_text(V1, encoding="utf-8")
    v2.write_text(V2, encoding="utf-8")
    got: list[Event] = []
    run = Replay(parse_rules(V1), io.StringIO(), io.StringIO(), on_event=got.append)
    run.change_rules_at(MIDWAY, parse_rules(V2))
    run.run_file(data)
    run.finish()
    assert _versions([e for e in got if e.customer_id == "acme"]) == [
        ("alert", "09:02:20", "v1"), ("suspension", "09:09:20", "v2")]
    assert [(datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S"), v.split("+")[0]) for at, v in run.rules_changed] \
        == [("09:08:00", "v2")]  # made live before the 09:08:20 CDR, the first to end after 09:08
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["replay", str(data), "--rules", str(v1), "--out", str(out), "--rejects",
                                      str(tmp_path / "rej.jsonl"), "--rules-change", f"2026-11-30T09:08:00Z={v2}"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["type"], e["rules_version"].split("+")[0]) for e in lines if e["customer_id"] == "acme"] == [
        ("alert", "v1"), ("suspension", "v2")]
    assert "rules v2+" in result.output and "live from event time 2026-11-30T09:08:00+00:00" in result.output
    for bad, message in (("2026-11-30T09:08:00=x", "needs a time zone"), ("soon=" + str(v2), "not an ISO 8601 time"),
                         (str(v2), "takes AT=FILE"), ("2026-11-30T09:08:00Z=" + str(tmp_path / "no.yaml"),
                                                       "no such file")):
        result = CliRunner().invoke(app, ["replay", str(data), "--rules", str(v1), "--rules-change", bad])
        assert result.exit_code == 2 and message in result.output, (bad, result.output)


def test_the_reloader_refuses_an_invalid_file_and_makes_a_valid_one_live(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(V1, encoding="utf-8")
    live: list[Rules] = []
    registry = CollectorRegistry()
    reloader = RulesReloader(path, parse_rules(V1, str(path)), live.append, lambda: MIDWAY, registry)

    def metrics() -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines()
                if line.startswith("tollguard_rules_") and "_created" not in line]

    assert not reloader.poll() and not reloader.reload()  # unchanged
    path.write_text(V1 + "detectors:\n  spend:\n    hour_critical: -5\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="tollguard.worker"):
        assert not reloader.poll()
        assert not reloader.reload()  # the same bad content is counted once
    (record,) = caplog.records
    assert "rules reload refused (file changed), keeping v1+" in record.getMessage()
    assert f"{path}:13: detectors.spend.hour_critical: " in record.getMessage()
    v1 = reloader.rules.version
    assert metrics() == ["tollguard_rules_reload_failures_total 1.0", "tollguard_rules_reloads_total 0.0",
                         f'tollguard_rules_info{{version="{v1}"}} 1.0']
    path.write_text(V2, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tollguard.worker"):
        assert reloader.reload("SIGHUP")
    assert [r.version.split("+")[0] for r in live] == ["v2"]
    assert caplog.records[-1].getMessage() == (
        f"rules {live[0].version} live from event time 2026-11-30T09:08:00+00:00 (SIGHUP; was {v1}); states kept")
    assert metrics() == ["tollguard_rules_reload_failures_total 1.0", "tollguard_rules_reloads_total 1.0",
                         f'tollguard_rules_info{{version="{live[0].version}"}} 1.0']


def test_a_reload_made_live_is_handed_on_to_be_kept_as_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(V1, encoding="utf-8")
    kept: list[tuple[str, str]] = []
    reloader = RulesReloader(path, parse_rules(V1, str(path)), lambda rules: None, lambda: MIDWAY,
                             CollectorRegistry(), on_live=lambda text, rules: kept.append((text, rules.version)))
    bad = V1 + "detectors:\n  spend:\n    hour_critical: -5\n"
    path.write_text(bad, encoding="utf-8")
    assert not reloader.reload()
    assert kept == []  # a refused file is never kept
    path.write_text(V2, encoding="utf-8")
    assert reloader.reload()
    assert kept == [(V2, reloader.rules.version)] and reloader.rules.version.startswith("v2+")
    assert not reloader.reload()  # unchanged: nothing new to keep
    assert len(kept) == 1


def test_a_reloaded_file_keeps_the_workers_timezone_and_country_overrides(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(V1, encoding="utf-8")
    overrides = {"timezone": "Europe/Rome", "default_country": "DE"}
    live: list[Rules] = []
    reloader = RulesReloader(path, parse_rules(V1, str(path), overrides), live.append, lambda: MIDWAY,
                             CollectorRegistry(), ingest=overrides)
    path.write_text(V1 + "# changed\n", encoding="utf-8")
    assert reloader.reload() is True
    assert (live[0].ingest.timezone, live[0].ingest.default_country) == ("Europe/Rome", "DE")
