"""Input positions in the customer's state (issue 14): what makes a record re-sent after a crash a re-delivery.

The stream keeps, per customer, the highest offset taken of each input partition
(:attr:`engine.core.CustomerState.positions`); it must survive the table (pieces) and a state
stored before it existed reads as none. On the broker, ``tests/test_faults.py`` kills workers.
"""

from __future__ import annotations

import orjson

from engine.core import CustomerState, Engine
from engine.registry import Rules
from streams.app import SOURCE_HEADER, TableStore, _source_position
from streams.web import Metrics


def test_positions_survive_the_table_and_default_to_none() -> None:
    engine = Engine(Rules(version="t"))
    table: dict[bytes, bytes] = {}
    store = TableStore(table, engine, Metrics(), partitions=4)
    state = engine.new_state("c1")
    state.positions.update({"p.cdrs[0]": 41, "p.cdrs[3]": 1_000_000, "p.verifications[2]": 7})
    store.put(state)
    store.checkpoint()
    again = TableStore(dict(table), engine, Metrics(), partitions=4).get("c1")
    assert again is not None and again.positions == {"p.cdrs[0]": 41, "p.cdrs[3]": 1_000_000, "p.verifications[2]": 7}
    older = orjson.loads(orjson.dumps(engine.new_state("c2").to_json_dict()))
    del older["positions"]  # a state written before positions existed
    assert CustomerState.from_json_dict(older).positions == {}


def test_the_source_header() -> None:
    assert _source_position([(SOURCE_HEADER, b"t-x.cdrs[12]@0")]) == ("t-x.cdrs[12]", 0)
    assert _source_position({SOURCE_HEADER: b"cdrs[1]@99"}) == ("cdrs[1]", 99)
    for bad in (b"cdrs[1]", b"@5", b"cdrs[1]@-3", b"cdrs[1]@x"):
        assert _source_position([(SOURCE_HEADER, bad)]) is None, bad
    assert _source_position([("format", b"jsonl")]) is None
