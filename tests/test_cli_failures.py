"""Clear failures (issue 12): one line naming the problem and what to do, the right exit status, no traceback."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.registry import parse_rules
from streams.cli import app
from tollguard.errors import RulesError

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEAD = "127.0.0.1:1"  # nothing listens on port 1


@pytest.mark.parametrize("args", [
    ["verify", "3db0f7a9", "--cleared", "--by", "anna", "--broker", DEAD],
    ["produce", str(FIXTURES / "canonical.jsonl"), "--broker", f"kafka://{DEAD}", "-q"],
    ["worker", "--broker", f"kafka://{DEAD}"],
])
def test_a_dead_broker_is_one_line_within_10_s(args: list[str]) -> None:
    started = time.monotonic()
    result = runner.invoke(app, args)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error == [f"error: cannot reach the Kafka broker at {DEAD} (connection refused): check that the broker "
                     "runs (infra/kafka/start.sh prints its address) and that --broker or KAFKA_BOOTSTRAP_SERVERS "
                     "names it (host:port, or kafka://host:port)"]


def test_train_without_the_ml_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("numpy", "sklearn", "skops"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as on a base install
    result = runner.invoke(app, ["train", str(FIXTURES / "canonical.jsonl"), "--out", str(tmp_path / "m.skops")])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        "error: training needs the ml extra: pip install 'tollguard[ml]' (missing: numpy, scikit-learn, skops)")


@pytest.mark.parametrize(("text", "line", "message"), [
    # an unclosed quote: PyYAML notices it lines later
    ('version: "x"\ningest:\n  timezone: "Europe/Rome\n  default_country: IT\nengine: {}\n', 3,
     "while scanning a quoted scalar that starts on this line"),
    ('ingest:\n  timezone: "Europe/Rome\n  default_country: "IT"\n', 2,
     "a quote opened on this line is closed only on line 3"),
    ('version: "abc\n', 1, "while scanning a quoted scalar that starts on this line"),
    # a key indented one space too few
    ("ingest:\n  timezone: UTC\n default_country: IT\n", 3, "check the indentation of this line, of line 2 before it"),
    # a block indented one space too deep: noticed at the next block, which names where this one starts
    ("detectors:\n   autodialer:\n     enabled: true\n  spend:\n    enabled: true\n", 4,
     "check the indentation of this line, of line 3 before it, and of line 2 where its block's keys start (under "
     "line 1)"),
    ("ingest:\n  timezone UTC\n  default_country: IT\n", 2, "no ':' after the key on this line"),
])
def test_yaml_errors_name_the_line_at_fault(text: str, line: int, message: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(text, "r.yaml")
    assert err.value.line == line, str(err.value)
    assert message in str(err.value)


def test_small_things(tmp_path: Path) -> None:
    folder = runner.invoke(app, ["replay", str(tmp_path)])
    assert folder.exit_code == 2
    assert f"{tmp_path}: a directory, not a file; give the CDR files in it" in " ".join(folder.output.split())
    one = runner.invoke(app, ["simulate", "--minutes", "1", "--customers", "1", "--scenario", "benign",
                              "--out", str(tmp_path / "one.jsonl")])
    assert one.exit_code == 0, one.output
    count = len((tmp_path / "one.jsonl").read_text().splitlines())
    assert f"{count:,} CDR{'' if count == 1 else 's'} written (jsonl)" in one.output
    assert "0 episodes" in one.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("tollguard ")
    helptext = " ".join(runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "(default: env TOLLGUARD_BROKER or KAFKA_BOOTSTRAP_SERVERS, else kafka://127.0.0.1:9092)" in helptext
    assert "(default: 6066)" in helptext


@pytest.mark.parametrize("rate", ["-5", "0", "nan", "inf"])
def test_produce_refuses_a_rate_that_is_not_positive(rate: str) -> None:
    result = runner.invoke(app, ["produce", str(FIXTURES / "canonical.jsonl"), "--rate", rate,
                                 "--broker", f"kafka://{DEAD}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.output.split()) == (
        "error: --rate must be a positive number of messages per second (leave it out to send unpaced), "
        f"got {float(rate):g}")


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_replaying_an_empty_file_says_that_nothing_was_read(tmp_path: Path, quiet: list[str]) -> None:
    empty, comments = tmp_path / "empty.jsonl", tmp_path / "comments.csv"
    empty.write_bytes(b"")
    comments.write_text("# exported 2025-03-11\n\n", encoding="utf-8")
    result = runner.invoke(app, ["replay", str(empty), str(comments), "--out", str(tmp_path / "e.jsonl"),
                                 "--rejects", str(tmp_path / "r.jsonl"), *quiet], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: 0 CDRs read: {empty}, {comments} held no CDR line (2 comment, blank or "
                        "header line(s)); nothing was replayed"]
    assert (tmp_path / "e.jsonl").read_text() == "" and (tmp_path / "r.jsonl").read_text() == ""


def test_a_refused_verdict_is_rejected_as_written(tmp_path: Path) -> None:
    import json

    written = '{"suspension_event_id": "nope", "verdict": "cleared", "by": "anna", "at": "2025-03-11T12:00:00Z"}'
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text(written + "\n")
    rejects = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["replay", str(FIXTURES / "canonical.jsonl"), "--verifications", str(verdicts),
                                 "-q", "--out", str(tmp_path / "e.jsonl"), "--rejects", str(rejects)])
    assert result.exit_code == 1
    (refused,) = [json.loads(line) for line in rejects.read_text().splitlines() if '"verdict"' in line]
    assert (refused["position"], refused["raw"], refused["reason"]) == (
        1, written, "verdict refused: unknown suspension nope")
