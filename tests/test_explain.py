"""``tollguard rules explain CUSTOMER``: effective thresholds, where each comes from, the rates that apply."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engine.registry import parse_rules
from streams.cli import app
from tollguard.explain import explain

RULES = """\
version: explain-test
high_risk_prefixes: ["+979", "+881"]
rates:
  currency: GBP
  prefixes:
    "+44909": {per_min: 3.0, note: UK premium 0909}
    "+4490": {per_min: 2.0}
    "+979": {per_min: 2.0, per_call: 0.5}
    "+39899": {per_min: 1.5}
detectors:
  spend:
    hour_critical: 150
customers:
  acme:
    name: Acme Call Centre
    country: GB
    dids:
      "+442079460000": {capacity: 60}
      "02079460001": {}
    allow:
      detectors: [autodialer]
      destinations: ["+44909123"]
    overrides:
      spend: {hour_warn: 80, mode: report_only}
  trial:
    mode: report_only
"""


def test_each_value_names_its_source() -> None:
    info = explain(parse_rules(RULES), "acme")
    spend = info["detectors"]["spend"]
    assert {f: (spend[f]["value"], spend[f]["source"]) for f in ("hour_warn", "hour_critical", "day_warn", "mode")} \
        == {"hour_warn": (80.0, "override"), "hour_critical": (150.0, "default"),
            "day_warn": (200.0, "built-in default"), "mode": ("report_only", "override")}
    assert info["detectors"]["autodialer"]["enabled"] == {"value": False, "source": "allowlist"}
    assert info["detectors"]["premium_destination"]["premium_types"]["value"] == [
        "premium_rate", "shared_cost", "personal_number"]
    assert (info["country"], info["country_source"], info["name"]) == ("GB", "customer", "Acme Call Centre")
    assert info["dids"] == {
        "+442079460000": {"capacity": 60, "source": "customer did"},
        "+442079460001": {"capacity": 20, "source": "did_concurrency.default_capacity"},
    }
    assert info["rates"] == {"currency": "GBP", "rule": "longest prefix wins", "entries": [
        {"prefix": "+39899", "per_min": 1.5, "per_call": 0.0, "note": "", "tags": []},
        {"prefix": "+4490", "per_min": 2.0, "per_call": 0.0, "note": "", "tags": ["national", "allowlisted"]},
        {"prefix": "+44909", "per_min": 3.0, "per_call": 0.0, "note": "UK premium 0909",
         "tags": ["national", "allowlisted"]},
        {"prefix": "+979", "per_min": 2.0, "per_call": 0.5, "note": "", "tags": ["high_risk"]},
    ]}


def test_a_customer_on_trial_and_an_unknown_customer() -> None:
    rules = parse_rules(RULES)
    trial = explain(rules, "trial")
    assert {d: f["mode"]["source"] for d, f in trial["detectors"].items()} == dict.fromkeys(
        trial["detectors"], "customer mode")
    assert trial["mode"] == "report_only"
    nobody = explain(rules, "nobody")
    assert (nobody["in_rules"], nobody["country"], nobody["country_source"], nobody["dids"]) == (
        False, "IT", "ingest.default_country", {})
    assert [r["tags"] for r in nobody["rates"]["entries"]] == [["national"], [], [], ["high_risk"]]


def test_the_command(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    result = CliRunner().invoke(app, ["rules", "explain", "acme", "--rules", str(path)])
    assert result.exit_code == 0, result.output
    assert "  hour_warn = 80.0  (override)" in result.stdout
    assert "  enabled = false  (allowlist)" in result.stdout
    assert "  +44909: 3/min + 0/call  UK premium 0909  [national, allowlisted]" in result.stdout
    result = CliRunner().invoke(app, ["rules", "explain", "acme", "--rules", str(path), "--json"])
    assert json.loads(result.stdout)["detectors"]["spend"]["hour_warn"] == {"value": 80.0, "source": "override"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("customers:\n  acme:\n    mode: sometimes\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["rules", "explain", "acme", "--rules", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:3: customers.acme.mode" in result.output
