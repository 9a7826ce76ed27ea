"""``tollguard verify`` against a running worker on the real broker (DESIGN §4, clauses 8.6 and 13.1).

The verdict goes onto ``verifications`` keyed by the suspension's customer, reaches that
customer's partition of ``cdrs-by-customer`` and the runner there: a ``reactivation``
naming the suspension. A second verdict on the closed suspension, and one on an unknown
suspension, are refused by the command itself (exit 1, nothing sent).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka_fixtures import WorkerProcess, read_topics, run_cli, unique_names

from tollguard import simulate

pytestmark = pytest.mark.kafka


def _wait_for(bootstrap: str, topic: str, n: int, timeout_s: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        values = [json.loads(r.value) for r in read_topics(bootstrap, [topic], idle_s=1.0)[topic]]
        if len(values) >= n or time.monotonic() > deadline:
            return values
        time.sleep(1)


def test_verify_clears_a_suspension_through_the_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, app_id = unique_names("verify")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path).start()
    try:
        day = tmp_path / "campaign.jsonl"
        simulate.write(simulate.run_scenario("autodialer", customers=3, seed=2).records(), "jsonl", day)
        run_cli(["produce", str(day), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)
        (suspension,) = _wait_for(kafka_bootstrap, f"{prefix}suspensions", 1)
        sid = suspension["event_id"]
        verify = ["verify", sid, "--cleared", "--by", "anna", "--topic-prefix", prefix]
        assert "sent to" in run_cli(verify, kafka_bootstrap)
        (reactivation,) = _wait_for(kafka_bootstrap, f"{prefix}reactivations", 1)
        assert (reactivation["suspension_event_id"], reactivation["customer_id"], reactivation["evidence"]["by"]) == (
            sid, suspension["customer_id"], "anna")
        assert reactivation["scope"] == suspension["scope"]
        again = run_cli(verify, kafka_bootstrap, ok=(1,))
        assert f"suspension {sid} is already closed: cleared (reactivated) by anna" in " ".join(again.split())
        unknown = run_cli(["verify", "nope", "--confirmed", "--by", "anna", "--topic-prefix", prefix],
                          kafka_bootstrap, ok=(1,))
        assert "unknown suspension nope" in unknown
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    topic = f"{prefix}verifications"
    keys = [r.key for r in read_topics(kafka_bootstrap, [topic])[topic]]
    assert keys == [suspension["customer_id"].encode()]  # one verdict sent, keyed by the customer
