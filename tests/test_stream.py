"""The Faust worker on a real Kafka broker gives the same events as ``tollguard replay``.

Every test here needs a broker (``kafka_bootstrap``, see tests/kafka_fixtures.py) and
runs ``tollguard worker`` / ``tollguard produce`` / ``tollguard replay`` as subprocesses,
each test with its own topic prefix and app id.

* a simulated day (every episode kind, 5 customers) with bad lines mixed in, produced
  with ``--flush`` into one worker: the events on the output topics equal replay's
  (same event ids; per id every field but ``emitted_at``), and the dead-letter topic
  holds exactly replay's rejects, each with its reason and raw value (put there by
  ``tollguard produce``, the parse agent or the detect agent);
* restart: half the file, SIGTERM, a new worker with the same app id (the state table
  is recovered from its changelog), the other half: still exactly replay's events.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka_fixtures import (
    DEAD_LETTER,
    EVENT_TOPICS,
    Record,
    WorkerProcess,
    read_topics,
    run_cli,
    unique_names,
    wait_for_lag_zero,
)

from tollguard.simulate import run_scenario, write

pytestmark = pytest.mark.kafka

CUSTOMERS = 5
SEED = 11
#: Topic of each event type (DESIGN §4).
TOPIC_OF = {
    "suspension": "suspensions",
    "reactivation": "reactivations",
    "capacity_increase": "capacity-increases",
    "compliance_notice": "compliance-notices",
    "alert": "alerts",
}
#: Columns of the simulator's asterisk-csv rows (21-column layout).
COL_END, COL_UNIQUEID, COL_LINKEDID = 11, 16, 19


# --------------------------------------------------------------------------- input files


def _row(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode())))


def _line(row: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerow(row)
    return buf.getvalue().encode()


def _with_bad_lines(clean: list[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The clean lines with malformed, binary, late and duplicate lines mixed in.

    Returns (all lines, the lines parse must reject, the lines the engine refuses as late).
    """
    first = _row(clean[0])
    bad_ts = _row(clean[10])
    bad_ts[COL_END] = "2025-03-11 25:61:00"
    late = list(first)
    late[COL_UNIQUEID] = late[COL_LINKEDID] = "late-call-0001"
    malformed = {  # index of a clean line -> the bad line that follows it
        100: _line(
            ["cust-001", "100", "200", "from-internal", "only seven columns", "x", "y"]
        ),  # column count
        200: _line(bad_ts),  # bad timestamp
        300: b"\x89PNG\x1a\x00\xff\xfe\xfdbinary\x80garbage\x01\x02\n",  # binary garbage
        400: clean[20].replace(b"DOCUMENTATION", b"DOCUMENTATI\xd3N"),  # a CDR that is not UTF-8 (Latin-1)
        500: clean[30].replace(b'"Dial"', b'"Di\x00al"'),  # NUL byte inside a CDR
        600: b"not,a,cdr\n",  # three columns
    }
    refused = {
        700: clean[50],  # a re-delivery long after the call was processed: late
    }
    duplicate = {800: clean[800]}  # an immediate second delivery of a row: counted once, not a reject
    lines = []
    for i, line in enumerate(clean):
        lines.append(line)
        for extra in (malformed, refused, duplicate):
            if i in extra:
                lines.append(extra[i])
    lines.append(_line(late))  # ended ~a day before the customer's newest CDR: late
    return lines, list(malformed.values()), [*refused.values(), _line(late)]


@dataclass
class DayFiles:
    clean: Path
    dirty: Path
    malformed: list[bytes]
    late: list[bytes]

    @property
    def expected_rejects(self) -> int:
        return len(self.malformed) + len(self.late)


@pytest.fixture(scope="module")
def day_files(tmp_path_factory: pytest.TempPathFactory) -> DayFiles:
    """A simulated day ("all" scenario, 5 customers, ~3.7k CDRs) as asterisk-csv, clean and dirty."""
    d = tmp_path_factory.mktemp("day")
    clean = d / "day.csv"
    write(run_scenario("all", customers=CUSTOMERS, seed=SEED).records(), "asterisk-csv", clean)
    dirty_lines, malformed, late = _with_bad_lines(clean.read_bytes().splitlines(keepends=True))
    dirty = d / "day-dirty.csv"
    dirty.write_bytes(b"".join(dirty_lines))
    return DayFiles(clean, dirty, malformed, late)


# --------------------------------------------------------------------------- replay and stream runs


@dataclass
class ReplayResult:
    events: list[dict[str, Any]]
    rejects: list[dict[str, Any]]


def replay(path: Path, out_dir: Path) -> ReplayResult:
    out, rej = out_dir / f"{path.stem}-events.jsonl", out_dir / f"{path.stem}-rejects.jsonl"
    run_cli(["replay", str(path), "--out", str(out), "--rejects", str(rej), "-q"], ok=(0, 1))
    return ReplayResult(
        [json.loads(x) for x in out.read_text().splitlines()],
        [json.loads(x) for x in rej.read_text().splitlines()],
    )


def produce(bootstrap: str, prefix: str, path: Path, flush: bool) -> None:
    args = ["produce", str(path), "--broker", bootstrap, "--topic", f"{prefix}cdrs", "-q"]
    run_cli([*args, "--flush"] if flush else args, bootstrap)


def wait_processed(bootstrap: str, worker: WorkerProcess) -> None:
    """Until the worker's group has committed everything on ``cdrs`` and ``cdrs-by-customer``."""
    p = worker.topic_prefix
    wait_for_lag_zero(
        bootstrap, worker.app_id, [f"{p}cdrs", f"{p}cdrs-by-customer"], timeout=120, worker=worker
    )


def read_outputs(bootstrap: str, prefix: str) -> dict[str, list[Record]]:
    return read_topics(bootstrap, [f"{prefix}{t}" for t in (*EVENT_TOPICS, DEAD_LETTER)], idle_s=2.0)


def events_of(outputs: dict[str, list[Record]], prefix: str) -> list[dict[str, Any]]:
    """Every event on the output topics, checked to be on its type's topic and keyed by customer."""
    events = []
    for topic in EVENT_TOPICS:
        for rec in outputs[f"{prefix}{topic}"]:
            event = json.loads(rec.value)
            assert TOPIC_OF[event["type"]] == topic, event
            assert rec.key == event["customer_id"].encode()
            events.append(event)
    return events


def by_event_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """event_id → the event without ``emitted_at``; asserts no id appears twice."""
    dupes = [eid for eid, n in Counter(e["event_id"] for e in events).items() if n > 1]
    assert not dupes, f"event ids seen more than once: {dupes}"
    return {e["event_id"]: {k: v for k, v in e.items() if k != "emitted_at"} for e in events}


def assert_same_events(stream: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    got, want = by_event_id(stream), by_event_id(expected)
    assert sorted(got) == sorted(want), (
        f"missing {sorted(set(want) - set(got))}, unexpected {sorted(set(got) - set(want))}"
    )
    for eid, event in want.items():
        assert got[eid] == event, eid


@dataclass
class StreamRun:
    prefix: str
    events: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    worker_log: str


@pytest.fixture(scope="module")
def day_stream(
    kafka_bootstrap: str, day_files: DayFiles, tmp_path_factory: pytest.TempPathFactory
) -> StreamRun:
    """One worker; the dirty day produced with --flush; everything on the output topics."""
    prefix, app_id = unique_names("day")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path_factory.mktemp("worker-day"))
    worker.start()
    try:
        produce(kafka_bootstrap, prefix, day_files.dirty, flush=True)
        wait_processed(kafka_bootstrap, worker)
        outputs = read_outputs(kafka_bootstrap, prefix)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    dead = [json.loads(r.value) for r in outputs[f"{prefix}{DEAD_LETTER}"]]
    return StreamRun(prefix, events_of(outputs, prefix), dead, worker.all_logs())


@pytest.fixture(scope="module")
def day_replay(day_files: DayFiles, tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    return replay(day_files.dirty, tmp_path_factory.mktemp("replay-day"))


# --------------------------------------------------------------------------- tests


def test_replay_of_the_day_has_the_events_we_test_with(day_files: DayFiles, day_replay: ReplayResult) -> None:
    """Guard against a vacuous comparison: the day fires suspensions, alerts and a capacity increase."""
    kinds = Counter(e["type"] for e in day_replay.events)
    assert kinds["suspension"] >= 3 and kinds["capacity_increase"] >= 1 and kinds["alert"] >= 1, kinds
    assert len(day_replay.rejects) == day_files.expected_rejects == 8
    clean = replay(day_files.clean, day_files.clean.parent)
    assert clean.rejects == []
    assert by_event_id(clean.events) == by_event_id(day_replay.events)  # bad lines change no decision


def test_stream_events_equal_replay_events(day_stream: StreamRun, day_replay: ReplayResult) -> None:
    assert_same_events(day_stream.events, day_replay.events)
    assert "Traceback" not in day_stream.worker_log


def test_dead_letters_are_replays_rejects(
    day_stream: StreamRun, day_replay: ReplayResult, day_files: DayFiles
) -> None:
    """Every malformed or late record ends on cdrs-dead-letter, counted, with its reason and raw value.

    Three stages dead-letter: ``tollguard produce`` for lines it cannot send as written
    (undecodable bytes: source the file, position its line), the parse agent for lines
    that do not parse (source ``cdrs[p]``, position the offset) and the detect agent for
    late CDRs (source ``cdrs-by-customer[p]``, the parsed record as raw). One shape:
    :class:`engine.runner.Reject`, as replay's rejects file.
    """
    dead, rejects = day_stream.dead, day_replay.rejects
    assert len(dead) == len(rejects) == day_files.expected_rejects
    for d in dead:
        assert set(d) == {"kind", "raw", "reason", "source", "position"} and d["kind"] == "cdr", d
        assert d["reason"] and d["raw"], d
    # the same reasons as replay, one for one
    assert Counter(d["reason"] for d in dead) == Counter(r["reason"] for r in rejects)

    def is_late(x: dict[str, Any]) -> bool:
        return str(x["reason"]).startswith("late CDR")

    # malformed lines: with replay's raw text (undecodable bytes escaped as \xNN) and reason
    assert Counter((d["raw"], d["reason"]) for d in dead if not is_late(d)) == Counter(
        (r["raw"], r["reason"]) for r in rejects if not is_late(r)
    )
    assert Counter(r["raw"] for r in rejects if not is_late(r)) == Counter(
        b.rstrip(b"\n").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        for b in day_files.malformed
    )
    at_produce = [d for d in dead if not d["source"].startswith(day_stream.prefix)]
    at_parse = [d for d in dead if d["source"].startswith(f"{day_stream.prefix}cdrs[")]
    at_detect = [d for d in dead if d["source"].startswith(f"{day_stream.prefix}cdrs-by-customer[")]
    assert (len(at_produce), len(at_parse), len(at_detect)) == (3, 3, 2)
    lines = {r["raw"]: (r["source"], r["position"]) for r in rejects}
    assert all((d["source"], d["position"]) == lines[d["raw"]] for d in at_produce)  # file and line, as replay
    assert all(isinstance(d["position"], int) for d in at_parse + at_detect)
    assert all(d["reason"].startswith("undecodable bytes") or "NUL" in d["reason"] for d in at_produce)
    # late CDRs: refused by the detect agent, which dead-letters the parsed record
    assert all(is_late(d) for d in at_detect)
    assert sorted(json.loads(d["raw"])["call_id"] for d in at_detect) == sorted(
        _row(b)[COL_UNIQUEID] for b in day_files.late
    )


def test_restart_resumes_from_the_changelog(
    kafka_bootstrap: str, day_files: DayFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Half the day, SIGTERM, a new worker with the same app id, the other half with --flush.

    The split falls inside the DID-concurrency episode (11:00-12:10; its capacity_increase
    fires later, from state built before the restart), so a lost or doubled state shows.
    """
    d = tmp_path_factory.mktemp("restart")
    lines = day_files.clean.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    first, second = d / "first.csv", d / "second.csv"
    first.write_bytes(b"".join(lines[:half]))
    second.write_bytes(b"".join(lines[half:]))
    split_at = _row(lines[half])[COL_END].replace(" ", "T") + "Z"
    expected = replay(day_files.clean, d).events

    prefix, app_id = unique_names("restart")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, d / "worker")
    worker.start()
    try:
        produce(kafka_bootstrap, prefix, first, flush=False)
        wait_processed(kafka_bootstrap, worker)
        before = events_of(read_outputs(kafka_bootstrap, prefix), prefix)
        assert worker.stop() == 0, worker.log()[-3000:]
        worker.start()
        produce(kafka_bootstrap, prefix, second, flush=True)
        wait_processed(kafka_bootstrap, worker)
        events = events_of(read_outputs(kafka_bootstrap, prefix), prefix)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.all_logs()

    # the first worker emitted what the first half proves, the second one the rest
    assert before and all(e["occurred_at"] <= split_at for e in before)
    assert {e["event_id"] for e in before} < {e["event_id"] for e in events}
    capacity = [e for e in events if e["type"] == "capacity_increase"]
    assert capacity and all(e["first_exceeded_at"] < split_at < e["occurred_at"] for e in capacity)
    # the union equals replay: no event id twice, none missing, same content
    assert_same_events(events, expected)


def test_verdicts_in_stream_equal_replay(
    kafka_bootstrap: str, day_files: DayFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same verdicts give the same reactivations, terminations and refusals in both modes.

    Verdicts dated after the data arrive, in replay, after the end of the CDRs; in the stream
    they are produced after the CDRs and a flush. One clears a suspension, one confirms
    another, one judges that one again (refused: closed), one names no known suspension
    (refused at the next flush) and one is dated before the suspension it judges (refused).
    """
    d = tmp_path_factory.mktemp("verdicts")
    base = replay(day_files.clean, d).events
    suspensions = [e for e in base if e["type"] == "suspension"]
    assert len(suspensions) >= 2
    first = suspensions[0]
    second = next(e for e in suspensions if e["customer_id"] != first["customer_id"])
    last_s = max(e["occurred_at"] for e in base)
    late_at = last_s.replace("Z", "+00:00")
    from datetime import datetime, timedelta

    def at(offset_s: float, when: str = late_at) -> str:
        return (datetime.fromisoformat(when.replace("Z", "+00:00")) + timedelta(seconds=offset_s)).isoformat()

    verdicts = [  # (customer key, verdict) in the order the stream receives them
        (first["customer_id"], {"suspension_event_id": first["event_id"], "verdict": "cleared", "by": "early",
                                "at": at(-1, first["occurred_at"])}),
        (first["customer_id"], {"suspension_event_id": first["event_id"], "verdict": "cleared", "by": "anna",
                                "at": at(3600)}),
        (second["customer_id"], {"suspension_event_id": second["event_id"], "verdict": "confirmed", "by": "bo",
                                 "at": at(3660)}),
        (second["customer_id"], {"suspension_event_id": second["event_id"], "verdict": "cleared", "by": "cy",
                                 "at": at(3720)}),
        (first["customer_id"], {"suspension_event_id": "no-such-suspension", "verdict": "cleared", "by": "di",
                                "at": at(3780)}),
    ]
    vfile = d / "verdicts.jsonl"
    vfile.write_text("".join(json.dumps(v) + "\n" for _, v in verdicts))
    out, rej = d / "v-events.jsonl", d / "v-rejects.jsonl"
    run_cli(["replay", str(day_files.clean), "--verifications", str(vfile), "--out", str(out), "--rejects",
             str(rej), "-q"], ok=(0, 1))
    expected = [json.loads(x) for x in out.read_text().splitlines()]
    refused = [json.loads(x) for x in rej.read_text().splitlines()]
    assert Counter(e["type"] for e in expected if e.get("suspension_event_id")) == {
        "reactivation": 1, "suspension": 1}
    assert len(refused) == 3 and all(r["kind"] == "verdict" for r in refused)

    prefix, app_id = unique_names("verdicts")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, d / "worker")
    worker.start()
    try:
        produce(kafka_bootstrap, prefix, day_files.clean, flush=True)
        wait_processed(kafka_bootstrap, worker)
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for customer, verdict in verdicts:
            producer.send(f"{prefix}verifications", key=customer.encode(), value=json.dumps(verdict).encode())
        producer.flush()
        producer.close()
        empty = d / "empty.jsonl"
        empty.write_text("")
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}verifications"], timeout=60, worker=worker)
        produce(kafka_bootstrap, prefix, empty, flush=True)  # settles the verdict that waits for its suspension
        wait_processed(kafka_bootstrap, worker)
        outputs = read_outputs(kafka_bootstrap, prefix)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert_same_events(events_of(outputs, prefix), expected)
    dead = [json.loads(r.value) for r in outputs[f"{prefix}{DEAD_LETTER}"]]
    assert sorted((json.loads(x["raw"])["by"], x["reason"]) for x in dead) == sorted(
        (json.loads(x["raw"])["by"], x["reason"]) for x in refused
    )
