"""No silent defaults (issue 12): the time zone and the country a run assumes are chosen or reported.

A German customer's Asterisk writes ``Master.csv`` in Europe/Rome local time (the switch is in
Italy) with German national numbers. Replayed with ``--timezone Europe/Rome --country DE`` the
numbers are German E.164 and the times UTC; replayed without, the summary says what it assumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.registry import load_rules
from streams.cli import app
from tollguard.adapters import read_file
from tollguard.rules_template import render_rules_yaml

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

#: 21-column cdr_csv rows, local time Europe/Rome (CET in March, CEST in July), German numbers, no rules file.
MASTER_CSV = (
    '"berlin-gmbh","03012345678","08912345670","from-trunk","""Kunde"" <03012345678>","SIP/trunk-00000001",'
    '"SIP/201-00000002","Dial","SIP/201,30","2025-03-14 10:00:00","2025-03-14 10:00:05","2025-03-14 10:02:05",'
    '125,120,"ANSWERED","DOCUMENTATION","1741942800.1","","","1741942800.1",1\n'
    '"berlin-gmbh","201","01601292455","from-internal","""Empfang"" <201>","SIP/201-00000003",'
    '"SIP/trunk-00000004","Dial","SIP/trunk/01601292455","2025-07-01 10:00:00","","2025-07-01 10:00:20",'
    '20,0,"NO ANSWER","DOCUMENTATION","1751356800.2","","","1751356800.2",2\n'
)


@pytest.fixture
def master_csv(tmp_path: Path) -> Path:
    path = tmp_path / "Master.csv"
    path.write_text(MASTER_CSV)
    return path


def _replay(args: list[str], tmp_path: Path) -> str:
    result = runner.invoke(app, ["replay", *args, "--out", str(tmp_path / "e.jsonl"),
                                 "--rejects", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def test_master_csv_of_a_german_customer_in_rome_time(master_csv: Path, tmp_path: Path) -> None:
    rules = load_rules(None, {"timezone": "Europe/Rome", "default_country": "DE"})
    records = [p.record for p in read_file(master_csv, "auto", rules.ingest, rules.country_of)]
    inbound, outbound = records
    assert inbound is not None and outbound is not None
    assert (inbound.direction, inbound.caller, inbound.callee, inbound.did) == (
        "inbound", "+493012345678", "+498912345670", "+498912345670")
    assert (inbound.start, inbound.answer, inbound.end) == (
        datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC), datetime(2025, 3, 14, 9, 0, 5, tzinfo=UTC),
        datetime(2025, 3, 14, 9, 2, 5, tzinfo=UTC))
    assert (outbound.direction, outbound.caller, outbound.callee, outbound.did) == (
        "outbound", "201", "+491601292455", None)
    assert (outbound.start, outbound.end) == (datetime(2025, 7, 1, 8, 0, 0, tzinfo=UTC),
                                              datetime(2025, 7, 1, 8, 0, 20, tzinfo=UTC))

    told = _replay([str(master_csv), "--timezone", "Europe/Rome", "--country", "DE"], tmp_path)
    assert "note:" not in told


def test_without_timezone_and_country_the_summary_says_what_it_assumed(master_csv: Path, tmp_path: Path) -> None:
    silent = _replay([str(master_csv)], tmp_path)
    assert silent.count("note:") == 2
    assert "5 timestamp(s) carried no time zone and were read as UTC (the default)" in silent
    assert "give --timezone ZONE" in silent
    assert ("national numbers of 1 customer(s) the rules give no country (berlin-gmbh) were normalised as IT "
            "numbers (the default): give --country CC") in silent
    # the user's own rules file choosing them counts as a choice
    own = tmp_path / "rules.yaml"
    own.write_text('ingest:\n  timezone: "UTC"\ncustomers:\n  berlin-gmbh: {country: DE}\n')
    assert "note:" not in _replay([str(master_csv), "--rules", str(own)], tmp_path)


def test_bad_timezone_or_country_is_a_usage_error(master_csv: Path) -> None:
    bad_zone = runner.invoke(app, ["replay", str(master_csv), "--timezone", "Europe/Atlantis"])
    assert bad_zone.exit_code == 2 and "--timezone: unknown IANA time zone 'Europe/Atlantis'" in bad_zone.output
    bad_country = runner.invoke(app, ["replay", str(master_csv), "--country", "XX"])
    assert bad_country.exit_code == 2 and "--country" in bad_country.output


def test_default_rules_are_the_packaged_file_and_equal_the_template(tmp_path: Path, monkeypatch) -> None:
    from engine.registry import Rules
    from tollguard.rules import default_rules_path

    assert default_rules_path().read_text() == (REPO / "rules" / "default.yaml").read_text()
    assert (REPO / "rules" / "default.yaml").read_text() == render_rules_yaml(Rules())
    monkeypatch.chdir(tmp_path)  # outside the repository: still the packaged file, not built-in defaults
    assert load_rules(None).version.startswith("default-1+")


def test_inspect_shows_how_each_line_was_read(master_csv: Path) -> None:
    import json

    result = runner.invoke(app, ["inspect", str(master_csv), "--timezone", "Europe/Rome", "--country", "DE",
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["status"], r["format"], r["customer_id"], r["country"], r["direction"]) for r in rows] == [
        (1, "accepted", "asterisk-csv", "berlin-gmbh", "DE", "inbound"),
        (2, "accepted", "asterisk-csv", "berlin-gmbh", "DE", "outbound"),
    ]
    assert rows[0]["caller"] == {"number": "+493012345678", "raw": "03012345678", "type": "fixed_line", "region": "DE"}
    assert rows[0]["did"] == "+498912345670" and rows[0]["start"] == "2025-03-14T09:00:00Z"
    assert rows[1]["callee"] == {"number": "+491601292455", "raw": "01601292455", "type": "mobile", "region": "DE"}
    assert rows[1]["caller"] == {"number": "201", "raw": None, "type": "extension", "region": None}
    assert (rows[1]["answered"], rows[1]["duration_s"], rows[1]["start"]) == (False, 20.0, "2025-07-01T08:00:00Z")
    assert "2 CDR line(s): 2 accepted, 0 rejected" in result.stderr and "note:" not in result.stderr

    # the table, and a refused line with its reason; without --timezone the note
    bad = master_csv.parent / "bad.csv"
    bad.write_text(MASTER_CSV + "not,a,cdr\n")
    table = runner.invoke(app, ["inspect", str(bad), "--country", "DE"])
    assert table.exit_code == 0, table.output
    flat = " ".join(table.output.split())
    assert "+491601292455" in flat and "mobile DE" in flat and "rejected" in flat
    assert "3 CDR line(s): 2 accepted, 1 rejected" in flat
    assert "were read as UTC (the default)" in flat and "national numbers" not in flat


def test_a_rules_file_copied_from_the_template_does_not_choose_zone_or_country(master_csv: Path,
                                                                                tmp_path: Path) -> None:
    from engine.registry import Rules

    copied = tmp_path / "mine.yaml"
    copied.write_text(render_rules_yaml(Rules()))  # `tollguard rules template > mine.yaml`
    output = _replay([str(master_csv), "--rules", str(copied)], tmp_path)
    assert output.count("note:") == 2
