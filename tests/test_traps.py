"""The honest traps stay silent (issue 9): odd-looking but honest traffic raises no alert and no suspension.

A hotline at exactly 20 simultaneous calls, a heavy toll-free caller, a firm calling 40 countries
all day, a G.729 customer at 24-31 kbps without loss, a customer whose every CDR arrives twice,
an incident's emergency calls, an allowlisted call-centre dialer and alarm panels
(:mod:`tollguard.simulate.traps`), with their parameters drawn from their ranges, over two days
and three seeds, replayed with the default rules and the simulated customers' section.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
import yaml

from engine.registry import parse_rules
from streams.replay import replay_files
from tollguard import simulate
from tollguard.simulate import customers_rules


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_honest_traps_raise_nothing(seed: int, tmp_path) -> None:
    sim = simulate.run_scenario("traps", customers=14, seed=seed, minutes=2880, variety=True,
                                start=datetime(2025, 3, 14, tzinfo=UTC))
    path = tmp_path / "traps.jsonl"
    simulate.write(sim.records(), "jsonl", path)
    rules = parse_rules(yaml.safe_dump(customers_rules(sim.profiles)))  # the built-in defaults + the customers
    out = io.StringIO()
    summary = replay_files([path], rules, out, io.StringIO())
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = {lab.customer_id: lab.kind for lab in sim.trap_labels}
    assert len(kinds) == 8 and summary.calls > 10_000  # every trap is there, with traffic around it
    # no alert, suspension, capacity increase (the hotline never exceeds 20) or notice (G.729 needs < 60 kbps)
    assert Counter((kinds.get(e["customer_id"], "benign"), e["type"], e["detector"]) for e in events) == Counter()
