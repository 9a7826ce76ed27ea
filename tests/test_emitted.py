"""An event already on its output topic is not sent again after a restart (streams/emitted.py).

A worker killed between an event's send and the broker's confirmation of the state that emitted it
takes the same records again and emits the same event id. After each partition assignment the worker
reads back the newest records of the output topics and skips an event whose id is there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_report_only import RULES_YAML, replay

from engine.registry import Rules
from engine.runner import Outcome, event_bytes
from streams.app import StreamJob, StreamSettings


def test_an_event_already_emitted_before_the_assignment_is_not_sent_again(tmp_path: Path) -> None:
    _, _, events = replay(RULES_YAML)
    alert, suspension = events  # the premium episode: an alert, then a suspension
    job = StreamJob(StreamSettings(app_id="emitted-test", datadir=str(tmp_path)), Rules(version="t"))
    sent: list[tuple[str, bytes]] = []

    class Topic:
        def __init__(self, name: str) -> None:
            self.name = name

        async def send(self, key: bytes, value: bytes) -> Any:
            sent.append((self.name, value))
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    job.outputs = {t: Topic(str(t)) for t in job.outputs}  # type: ignore[misc]
    job._emitted_before = {alert.event_id}  # noqa: SLF001 (what the output topics held at the assignment)

    asyncio.run(job.send(Outcome(events=[alert, suspension])))
    assert [orjson.loads(v)["event_id"] for _, v in sent] == [suspension.event_id]
    assert sent[0][1] == event_bytes(suspension)
    assert job.metrics.registry.get_sample_value("tollguard_redelivered_total") == 1.0


@pytest.mark.kafka
def test_the_output_topics_are_read_back_from_their_newest_records(kafka_bootstrap: str) -> None:
    from kafka import KafkaProducer
    from kafka_fixtures import unique_names

    from streams.emitted import emitted_ids
    from streams.produce import ensure_topics

    prefix, _ = unique_names("emitted")
    topics = [f"{prefix}suspensions", f"{prefix}alerts"]
    ensure_topics(kafka_bootstrap, {topics[0]: 1, topics[1]: 2})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(5):
        producer.send(topics[0], value=orjson.dumps({"event_id": f"s{i}"}), partition=0)
    producer.send(topics[0], value=b"not json", partition=0)
    producer.send(topics[1], value=orjson.dumps({"event_id": "a0"}), partition=1)
    producer.flush()
    producer.close()
    assert emitted_ids(kafka_bootstrap, topics, tail=3) == {"s3", "s4", "a0"}  # the newest 3 of a partition
    assert emitted_ids(kafka_bootstrap, [f"{prefix}no-such-topic"]) == set()
