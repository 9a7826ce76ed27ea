"""The stream's state: bounded pieces in the table, migration of the older format, a busy customer.

* :class:`streams.app.TableStore` over a plain dict (the Faust table's mapping interface):
  states written at a checkpoint read back equal; a checkpoint after a small change rewrites
  only the pieces that changed; a state stored whole (format 1) is migrated to pieces; an
  unknown format is refused with a clear message.
* On the real broker: one trunking customer at 5,000 calls/hour for two hours through the
  worker: no changelog record near the broker's 1 MB limit, and the events equal replay's.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from engine.core import Engine
from engine.registry import Rules
from engine.runner import Runner
from engine.state import PIECE_BYTES, STATE_FORMAT, StateFormatError, split_state
from streams.app import PIECE_SEP, TableStore
from streams.web import Metrics
from tollguard.cdr import CallDetailRecord, Direction, Disposition

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def busy_customer(
    calls_per_hour: int, hours: float, seed: int = 5, customer: str = "trunk-1"
) -> list[CallDetailRecord]:
    """A SIP-trunking customer: 300 DIDs, 200 CLIs, diverse destinations and callers, in end order."""
    rng = random.Random(seed)
    dids = [f"+39021{rng.randrange(10**6):06d}" for _ in range(300)]
    clis = [f"+39061{rng.randrange(10**6):06d}" for _ in range(200)]
    out = []
    n = int(calls_per_hour * hours)
    for i in range(n):
        start = T0 + timedelta(seconds=rng.uniform(0, hours * 3600))
        answered = rng.random() < 0.7
        talk = min(3600.0, rng.lognormvariate(4.5, 1.0)) if answered else 0.0
        ring = rng.uniform(2, 20)
        end = start + timedelta(seconds=ring + talk)
        other = rng.choice([f"+393{rng.randrange(10**9):09d}", f"+3902{rng.randrange(10**8):08d}",
                            f"+44207{rng.randrange(10**7):07d}", f"+4930{rng.randrange(10**8):08d}"])
        outbound = rng.random() < 0.6
        cli, did = rng.choice(clis), rng.choice(dids)
        out.append(CallDetailRecord(
            call_id=f"{customer}-{i:06d}", customer_id=customer,
            direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            caller=cli if outbound else other, callee=other if outbound else did, did=cli if outbound else did,
            start=start, answer=start + timedelta(seconds=ring) if answered else None, end=end,
            duration_s=ring + talk, billsec_s=talk,
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            hangup_cause=16 if answered else 19,
        ))
    out.sort(key=lambda c: (c.end, c.call_id))
    return out


def _store(table: dict[bytes, bytes]) -> TableStore:
    return TableStore(table, Engine(Rules(version="t")), Metrics(), partitions=4)


def test_states_written_in_pieces_read_back_equal_and_small_changes_rewrite_little() -> None:
    table: dict[bytes, bytes] = {}
    store = _store(table)
    runner = Runner(store.engine, store)
    cdrs = busy_customer(3000, 1.0)
    for cdr in cdrs[:-1]:
        runner.take_record(cdr, "t", None, "")
    store.checkpoint()
    whole = len(orjson.dumps(store.cache["trunk-1"].to_json_dict()))
    assert whole > 4 * PIECE_BYTES  # the state is far larger than one piece...
    assert max(len(v) for v in table.values()) <= PIECE_BYTES  # ...but no record is
    assert all(k.startswith(b"trunk-1" + PIECE_SEP) for k in table)

    fresh = _store(dict(table))
    assert fresh.get("trunk-1").to_json_dict() == store.cache["trunk-1"].to_json_dict()

    before = dict(table)
    registry = store.metrics.registry
    written = registry.get_sample_value("tollguard_state_pieces_written_total")
    runner.take_record(cdrs[-1], "t", None, "")
    store.checkpoint()
    rewritten = registry.get_sample_value("tollguard_state_pieces_written_total") - written
    assert 0 < rewritten < len(before) / 2, (rewritten, len(before))


def test_a_state_stored_whole_by_an_older_worker_is_migrated_to_pieces() -> None:
    engine = Engine(Rules(version="t"))
    old = engine.new_state("c1")
    old.max_end_s = 1_770_000_000.0
    table = {b"c1": orjson.dumps(old.to_json_dict())}  # format 1: one record, keyed by the customer
    store = _store(table)
    assert store.customers() == ["c1"]
    state = store.get("c1")
    assert state is not None and state.max_end_s == 1_770_000_000.0
    store.checkpoint()
    assert b"c1" not in table and json.loads(table[b"c1" + PIECE_SEP])["format"] == STATE_FORMAT


class _Recorder(dict):  # type: ignore[type-arg]
    """A table that logs its writes and deletes in order (what reaches the changelog)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.ops: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.ops.append((key, None))
        super().__delitem__(key)


def _cut(table: dict[bytes, bytes], ops: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    out = dict(table)
    for key, value in ops:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_a_checkpoint_cut_anywhere_leaves_the_old_state_or_the_new_one() -> None:
    """A worker killed between two writes of one checkpoint: the table read back gives exactly the
    state before or the state after, never a mix or a missing piece (format 3, engine/state.py)."""
    cdrs = busy_customer(3000, 1.0)
    table: dict[bytes, bytes] = {}
    store = _store(table)
    runner = Runner(store.engine, store)
    for cdr in cdrs[:2000]:
        runner.take_record(cdr, "t", None, "")
    store.checkpoint()
    old = orjson.loads(orjson.dumps(store.cache["trunk-1"].to_json_dict()))  # a copy: the state lives on
    before = dict(table)
    recorder = _Recorder(table)
    store.table = recorder
    for cdr in cdrs[2000:2400]:  # enough change to rewrite many pieces, delete some, add some
        runner.take_record(cdr, "t", None, "")
    store.checkpoint()
    new = orjson.loads(orjson.dumps(store.cache["trunk-1"].to_json_dict()))
    assert old != new and len(recorder.ops) > 3
    assert any(v is None for _, v in recorder.ops)  # pieces the new root no longer names are deleted
    for cut in range(len(recorder.ops) + 1):
        got = _store(_cut(before, recorder.ops[:cut])).get("trunk-1")
        assert got is not None
        assert orjson.loads(orjson.dumps(got.to_json_dict())) in (old, new), cut
    # and the next checkpoint after a cut deletes the pieces the cut left unnamed
    half = _cut(before, recorder.ops[: len(recorder.ops) // 2])
    again = _store(half)
    state = again.get("trunk-1")
    again.put(state)
    for cdr in cdrs[2000:2400]:
        Runner(again.engine, again).take_record(cdr, "t", None, "")
    again.checkpoint()
    assert orjson.loads(orjson.dumps(again.get("trunk-1").to_json_dict())) == new
    assert set(half) == set(recorder)


def test_a_state_stored_by_a_format_2_worker_is_read_and_rewritten() -> None:
    """Format 2 stored each piece under its path (no digests): read, then rewritten in format 3."""
    from engine.state import _child

    def split_v2(node: object, path: str, out: dict[str, bytes]) -> None:
        data = orjson.dumps({"v": node})
        if len(data) <= 256 or not isinstance(node, dict) or len(node) < 2:
            out[path] = data
            return
        names = sorted(node)
        out[path] = orjson.dumps({"d": 2})
        for index, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
            split_v2({n: node[n] for n in part}, _child(path, index), out)

    engine = Engine(Rules(version="t"))
    state = engine.new_state("c2")
    state.positions.update({f"t{i}[0]": i for i in range(40)})
    pieces: dict[str, bytes] = {}
    split_v2(state.to_json_dict(), "", pieces)
    root = json.loads(pieces[""])
    root["format"] = 2
    pieces[""] = json.dumps(root).encode()
    assert len(pieces) > 3
    table = {b"c2" + PIECE_SEP + k.encode(): v for k, v in pieces.items()}
    store = _store(table)
    got = store.get("c2")
    assert got is not None and got.to_json_dict() == state.to_json_dict()
    store.checkpoint()
    assert json.loads(table[b"c2" + PIECE_SEP])["format"] == STATE_FORMAT
    assert all(b"@" in k for k in table if k != b"c2" + PIECE_SEP)  # the format 2 paths are deleted
    assert _store(dict(table)).get("c2").to_json_dict() == state.to_json_dict()


def test_a_state_in_an_unknown_format_is_refused_with_a_clear_message() -> None:
    pieces = split_state({"customer_id": "c1"})
    root = json.loads(pieces[""])
    root["format"] = 99
    table = {b"c1" + PIECE_SEP: json.dumps(root).encode()}
    with pytest.raises(StateFormatError, match="written in format 99; this version reads format 3"):
        _store(table).get("c1")


@pytest.mark.kafka
def test_a_busy_customer_through_the_worker_keeps_every_table_record_small(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """5,000 calls/hour for two hours of one customer: largest changelog record, and replay ≡ stream."""
    from kafka_fixtures import WorkerProcess, read_topics, run_cli, unique_names, wait_for_lag_zero

    from tollguard.adapters import write_record

    path = tmp_path / "trunk.jsonl"
    with open(path, "w") as out:
        for cdr in busy_customer(5000, 2.0):
            out.write(write_record("jsonl", cdr) + "\n")
    replay_out = tmp_path / "replay.jsonl"
    run_cli(["replay", str(path), "--out", str(replay_out), "--rejects", str(tmp_path / "rej.jsonl"), "-q"])
    expected = {e["event_id"]: e for e in map(json.loads, replay_out.read_text().splitlines())}

    prefix, app_id = unique_names("busy")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker").start()
    try:
        run_cli(["produce", str(path), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"], timeout=240,
                          worker=worker)
        changelog = f"{app_id}-customer-state-changelog"
        topics = [changelog, *(f"{prefix}{t}" for t in ("suspensions", "alerts", "capacity-increases",
                                                        "compliance-notices", "reactivations"))]
        records = read_topics(kafka_bootstrap, topics, idle_s=2.0)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    sizes = [len(r.value or b"") for r in records[changelog]]
    print(f"\nbusy customer: {len(sizes)} changelog records, largest {max(sizes):,} bytes")
    assert sizes and max(sizes) <= PIECE_BYTES
    got = {e["event_id"]: e for t in topics[1:] for e in (json.loads(r.value) for r in records[t])}
    assert sorted(got) == sorted(expected)
    assert "Traceback" not in worker.all_logs()


@pytest.mark.kafka
def test_a_worker_meeting_an_unknown_state_format_stops_with_a_clear_message(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer
    from kafka_fixtures import WorkerProcess, run_cli, unique_names

    from streams.app import partition_of
    from tollguard.adapters import write_record

    prefix, app_id = unique_names("format")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "worker").start()
    assert worker.stop() == 0  # topics and changelog exist now
    piece = json.loads(split_state({"customer_id": "trunk-1"})[""])
    piece["format"] = 99
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(f"{app_id}-customer-state-changelog", key=b"trunk-1" + PIECE_SEP, value=json.dumps(piece).encode(),
                  partition=partition_of(b"trunk-1", 4))
    producer.flush()
    producer.close()
    path = tmp_path / "one.jsonl"
    path.write_text(write_record("jsonl", busy_customer(10, 1.0)[0]) + "\n")
    worker.start()
    try:
        run_cli(["produce", str(path), "--topic", f"{prefix}cdrs", "-q"], kafka_bootstrap)
        import time

        deadline = time.monotonic() + 90
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not worker.alive(), "the worker kept running on a state it cannot read:\n" + worker.all_logs()[-6000:]
    finally:
        worker.stop()
    assert "customer trunk-1: the state was written in format 99; this version reads format 3" in worker.log()


@pytest.mark.parametrize("hash_depth", [24, 0])
def test_busy_dids_with_keys_of_equal_length_split_into_bounded_pieces(hash_depth, monkeypatch) -> None:
    """Regression: bucketing by crc32 kept two equal-length keys together at every depth (endless recursion)."""
    import engine.state as state_mod

    monkeypatch.setattr(state_mod, "_HASH_DEPTH", hash_depth)  # 0: the sorted-run fallback alone
    tree = {"dids": {f"+3902{i:08d}": {"calls": [[float(j), float(j + 1)] for j in range(3000)]} for i in range(6)}}
    pieces = split_state(tree)
    assert state_mod.join_state(pieces) == tree
    assert max(len(v) for v in pieces.values()) <= PIECE_BYTES
