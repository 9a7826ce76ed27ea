"""``tollguard backtest``: one read of history, two rules files, what the change does.

The simulated day of the built-in example (10 customers, one episode of every kind, seed 1)
is backtested with the default rules (plus the simulated customers' section) as baseline and,
as the new rules, the same file with one threshold lowered: ``spend.hour_critical`` from
EUR 200 to EUR 50. Under the new rules cust-004's high-cost (IRSF) episode is suspended by
``spend`` as soon as its hour costs EUR 52.80, 85 s before the baseline's ``arbitrage``
suspension, which the spend suspension then covers; nothing else changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.registry import load_rules
from streams.backtest import backtest, compare
from streams.cli import app
from streams.train import read_labels
from tollguard import simulate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("backtest")
    sim = simulate.run_scenario("all", customers=10, seed=1)
    simulate.write(sim.records(), "jsonl", d / "day.jsonl")
    simulate.write_labels(sim.labels + sim.trap_labels, d / "labels.jsonl")
    rules = yaml.safe_load((REPO / "rules" / "default.yaml").read_text(encoding="utf-8"))
    rules["customers"] = simulate.customers_rules(sim.profiles)["customers"]
    (d / "old.yaml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    rules["detectors"]["spend"]["hour_critical"] = 50.0
    (d / "new.yaml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return {"cdrs": d / "day.jsonl", "labels": d / "labels.jsonl", "old": d / "old.yaml", "new": d / "new.yaml"}


def _recall(per_kind: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {kind: (row["detected"], row["episodes"], row["recall"], row["ttd_median_s"])
            for kind, row in per_kind.items()}


#: (detected at the required level, episodes, recall, median time to detect in s) per kind, baseline rules.
RECALL_BASELINE = {
    "premium_destination": (1, 1, 1.0, 437.146),
    "arbitrage_reward": (1, 1, 1.0, 397.769),
    "arbitrage_pumping": (1, 1, 1.0, 601.57),
    "arbitrage_high_cost": (1, 1, 1.0, 1098.689),
    "autodialer": (1, 1, 1.0, 199.663),
    "wangiri": (1, 1, 1.0, 242.12),
    "did_concurrency": (1, 1, 1.0, 6721.238),
    "bandwidth": (1, 1, 1.0, 473.387),
    "volume_anomaly": (0, 1, 0.0, None),  # only the anomaly model (--model) sees it
}


def test_lowering_one_threshold_adds_exactly_one_suspension(day: dict[str, Path]) -> None:
    report = backtest([day["cdrs"]], load_rules(day["new"]), load_rules(day["old"]),
                      labels=read_labels(day["labels"]))
    assert report["input"]["lines_read"] == 7141
    assert report["events"] == {
        "baseline": {"total": 15, "alert": 7, "capacity_increase": 1, "compliance_notice": 1, "suspension": 6},
        "new": {"total": 14, "alert": 6, "capacity_increase": 1, "compliance_notice": 1, "suspension": 6},
    }
    assert report["added"] == [{
        "event_id": "26d7812c-78db-5b54-a8cf-326e4e7f46be",
        "type": "suspension",
        "detector": "spend",
        "customer_id": "cust-004",
        "scope": "outbound_international:cust-004",
        "occurred_at": "2025-03-11T17:17:28.046000Z",
        "reason": "Customer cust-004 spent EUR 52.80 on 8 priced outbound calls in the last hour (most to +225); "
                  "the critical level is EUR 50.00 (clause 8.2), so outbound international calls of cust-004 are "
                  "suspended.",
        "estimated_cost": 52.8,
        "currency": "EUR",
    }]
    assert [(r["type"], r["detector"], r["customer_id"], r["scope"], r["occurred_at"], r["estimated_cost"])
            for r in report["removed"]] == [
        ("alert", "spend", "cust-004", "outbound_international:cust-004", "2025-03-11T17:17:28.046000Z", 52.8),
        ("suspension", "arbitrage", "cust-004", "outbound_international:cust-004", "2025-03-11T17:18:53.146000Z",
         67.81),
    ]
    assert report["changed"] == [] and report["ttd_shifts"] == []
    assert report["by_group"] == [
        {"type": "alert", "detector": "spend", "customer_id": "cust-004", "added": 0, "removed": 1, "changed": 0},
        {"type": "suspension", "detector": "arbitrage", "customer_id": "cust-004", "added": 0, "removed": 1,
         "changed": 0},
        {"type": "suspension", "detector": "spend", "customer_id": "cust-004", "added": 1, "removed": 0,
         "changed": 0},
    ]
    assert report["newly_suspended"] == [] and report["no_longer_suspended"] == []  # cust-004 was suspended anyway
    labels = report["labels"]
    assert _recall(labels["baseline"]["per_kind"]) == RECALL_BASELINE
    assert _recall(labels["new"]["per_kind"]) == {
        **RECALL_BASELINE, "arbitrage_high_cost": (1, 1, 1.0, 1013.589)}  # suspended 85.1 s sooner
    assert labels["baseline"]["false_suspensions"] == labels["new"]["false_suspensions"] == {
        "events": 0, "customers": [], "traps": {}}


def test_the_command_prints_json_and_exits_0(day: dict[str, Path], tmp_path: Path) -> None:
    verdicts = tmp_path / "verdicts.jsonl"  # clears the baseline's arbitrage suspension, unknown to the new rules
    verdicts.write_text(json.dumps({"suspension_event_id": "21790138-f245-51ed-9619-435f60cc1c73",
                                    "verdict": "cleared", "by": "anna", "at": "2025-03-11T18:00:00Z"}) + "\n")
    result = CliRunner().invoke(app, ["backtest", str(day["cdrs"]), "--rules", str(day["new"]),
                                      "--baseline", str(day["old"]), "--labels", str(day["labels"]),
                                      "--verifications", str(verdicts), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["event_id"] for r in report["added"]] == ["26d7812c-78db-5b54-a8cf-326e4e7f46be"]
    assert [(r["type"], r["detector"]) for r in report["removed"]] == [
        ("alert", "spend"), ("suspension", "arbitrage"), ("reactivation", "arbitrage")]
    assert {k: v for k, v in report["input"].items() if k.startswith("verdicts")} == {
        "verdicts_applied_baseline": 1, "verdicts_applied_new": 0,
        "verdicts_refused_baseline": 0, "verdicts_refused_new": 1}
    assert report["labels"]["new"]["per_kind"]["arbitrage_high_cost"]["ttd_median_s"] == 1013.589


def test_the_same_rules_on_both_sides_show_no_difference(day: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["backtest", str(day["cdrs"]), "--rules", str(day["old"]),
                                      "--baseline", str(day["old"])])
    assert result.exit_code == 0, result.output
    assert "no difference in events" in result.stdout
    assert "newly suspended customers: none" in result.stdout


def test_bad_usage_exits_2(day: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detectors:\n  spend:\n    hour_critical: -1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["backtest", str(day["cdrs"]), "--rules", str(bad), "--baseline",
                                      str(day["old"])])
    assert result.exit_code == 2
    assert "bad.yaml:3: detectors.spend.hour_critical" in result.output
    result = CliRunner().invoke(app, ["backtest", str(tmp_path / "none.jsonl"), "--rules", str(day["old"]),
                                      "--baseline", str(day["old"])])
    assert result.exit_code == 2 and "no such file" in result.output


def _ev(eid: str, etype: str, at: str, reason: str = "r", **evidence: Any) -> dict[str, Any]:
    return {"event_id": eid, "type": etype, "detector": "premium_destination", "customer_id": "c1",
            "scope": {"kind": "cli", "value": "+3902"}, "occurred_at": at, "reason": reason,
            "evidence": evidence, "rules_version": eid, "emitted_at": at}


def test_an_episode_whose_id_moved_is_a_change_not_an_addition() -> None:
    old = [_ev("a1", "alert", "2025-03-11T02:05:00Z", warn=3), _ev("s1", "suspension", "2025-03-11T02:08:00Z")]
    new = [_ev("a2", "alert", "2025-03-11T02:04:00Z", warn=2), _ev("s1", "suspension", "2025-03-11T02:08:00Z"),
           _ev("x", "alert", "2025-03-11T05:00:00Z") | {"scope": {"kind": "account", "value": "c1"}}]
    diff = compare(old, new)
    assert [r["event_id"] for r in diff["added"]] == ["x"] and diff["removed"] == []
    assert [(r["event_id"], r["fields"]) for r in diff["changed"]] == [
        ("a2", {"event_id": ["a1", "a2"], "evidence": {"warn": [3, 2]},
                "occurred_at": ["2025-03-11T02:05:00Z", "2025-03-11T02:04:00Z"]})]
    assert diff["ttd_shifts"] == [{"type": "alert", "detector": "premium_destination", "customer_id": "c1",
                                   "scope": "cli:+3902", "baseline": "2025-03-11T02:05:00Z",
                                   "new": "2025-03-11T02:04:00Z", "shift_s": -60.0}]


def test_rules_that_read_cdrs_differently_are_noted(tmp_path: Path) -> None:
    from test_authorize import RULES_YAML, premium_episode

    from engine.registry import parse_rules

    data = tmp_path / "calls.jsonl"
    simulate.write(premium_episode(), "jsonl", data)
    same = backtest([data], parse_rules(RULES_YAML), parse_rules(RULES_YAML))
    assert (same["notes"], same["added"], same["removed"], same["changed"]) == ([], [], [], [])
    assert same["events"]["new"] == {"total": 2, "alert": 1, "suspension": 1}
    other = backtest([data], parse_rules(RULES_YAML.replace("country: GB", "country: FR")), parse_rules(RULES_YAML))
    assert other["notes"] == ["the two rules files read CDRs differently (ingest settings or customers' countries): "
                              "the input was read once, with the new rules' settings"]
