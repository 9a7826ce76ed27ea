"""``tollguard_processing_latency_seconds`` starts at the original CDR's produce time (issue 14).

CDRs whose messages on ``cdrs`` carry a produce time 100 s in the past: every observation of the
histogram is above 30 s (measured from the repartition record, it would be milliseconds).
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
from kafka_fixtures import WorkerProcess, unique_names, wait_for_lag_zero

from tollguard.simulate import run_scenario

pytestmark = pytest.mark.kafka

AGO_S = 100


def test_latency_runs_from_the_cdrs_produce_time(kafka_bootstrap: str, tmp_path: Path) -> None:
    from kafka import KafkaProducer

    prefix, app_id = unique_names("latency")
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, tmp_path / "w").start()
    try:
        records = list(run_scenario("benign", customers=3, seed=4).records())[:50]
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        then_ms = int((time.time() - AGO_S) * 1000)
        for record in records:
            producer.send(f"{prefix}cdrs", value=record.model_dump_json().encode(), timestamp_ms=then_ms)
        producer.flush()
        producer.close()
        wait_for_lag_zero(kafka_bootstrap, app_id, [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"], timeout=120,
                          worker=worker)
        text = urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=10).read().decode()
    finally:
        assert worker.stop() == 0

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert match, name
        return float(match[1])

    assert value("tollguard_processing_latency_seconds_count") == len(records) == 50
    assert value('tollguard_processing_latency_seconds_bucket{le="30.0"}') == 0
    assert value("tollguard_processing_latency_seconds_sum") >= AGO_S * len(records)
