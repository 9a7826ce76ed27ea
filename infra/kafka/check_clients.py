#!/usr/bin/env python3
"""Smoke test of the Python Kafka clients tollguard uses against a running broker.

    python3 infra/kafka/check_clients.py --bootstrap 127.0.0.1:9092 [--skip faust]

Checks (each on its own fresh topic and consumer group, no api_version pinning):
  kafka-python  KafkaAdminClient creates a topic; KafkaProducer sends 100 records;
                KafkaConsumer (group, earliest) reads them and commits; ListOffsets
                (beginning/end offsets, offsets_for_times); the admin client lists
                groups and the group's committed offsets; the topic is deleted.
  aiokafka      AIOKafkaAdminClient creates a topic; an idempotent AIOKafkaProducer
                sends 100 records; AIOKafkaConsumer (group, earliest) reads them and
                commits; committed() and end_offsets() agree; admin lists the group's
                offsets; the topic is deleted.
  faust         a tiny faust-streaming app (one topic, one agent) run as
                `app.main()` with `worker -l warn --without-web` in a child process;
                a task sends 10 records, the agent counts them.

Needs: kafka-python, aiokafka, faust-streaming (a missing library is a failure unless
that check is skipped). Exits 0 only if every check that ran passed; prints
"N passed, N failed" as its last line.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

N_MESSAGES = 100
N_FAUST = 10


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


def _wait_for(pred, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- kafka-python
def _group_id(g) -> str:
    if isinstance(g, dict):
        return g.get("group_id") or g.get("group")
    if isinstance(g, tuple):
        return g[0]
    return getattr(g, "group_id", g)


def check_kafka_python(bootstrap: str) -> str:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    topic = f"tollguard-smoke-kp-{_suffix()}"
    group = f"tollguard-smoke-kp-group-{_suffix()}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tollguard-smoke-kp",
                             request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=4, replication_factor=1)],
                            timeout_ms=15000)
        _wait_for(lambda: topic in admin.list_topics(), 15, f"topic {topic} in metadata")

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                 client_id="tollguard-smoke-kp-producer")
        try:
            futures = [producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
                       for i in range(N_MESSAGES)]
            producer.flush(timeout=30)
            metas = [f.get(timeout=30) for f in futures]
        finally:
            producer.close(timeout=10)
        partitions_used = sorted({m.partition for m in metas})

        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 client_id="tollguard-smoke-kp-consumer")
        try:
            seen: set[bytes] = set()
            deadline = time.monotonic() + 60
            while len(seen) < N_MESSAGES and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    seen.update(r.value for r in records)
            if len(seen) != N_MESSAGES:
                raise AssertionError(f"consumed {len(seen)} distinct records, expected {N_MESSAGES}")
            consumer.commit()

            tps = [TopicPartition(topic, p) for p in range(4)]
            begin = consumer.beginning_offsets(tps)
            end = consumer.end_offsets(tps)
            if sum(end.values()) - sum(begin.values()) != N_MESSAGES:
                raise AssertionError(f"ListOffsets: begin={begin} end={end}")
            by_time = consumer.offsets_for_times({tp: 0 for tp in tps})
            if any(v is None for tp, v in by_time.items() if end[tp] > 0):
                raise AssertionError(f"offsets_for_times returned None: {by_time}")
        finally:
            consumer.close()

        # kafka-python 3.0 renamed list_consumer_groups / list_consumer_group_offsets
        # to list_groups / list_group_offsets (which returns {group: {tp: offset}}).
        if hasattr(admin, "list_groups"):
            groups = [_group_id(g) for g in admin.list_groups()]
            offsets = admin.list_group_offsets({group: None})[group]
        else:
            groups = [_group_id(g) for g in admin.list_consumer_groups()]
            offsets = admin.list_consumer_group_offsets(group)
        if group not in groups:
            raise AssertionError(f"group {group} not in the listed groups: {groups}")
        committed = sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)
        if committed != N_MESSAGES:
            raise AssertionError(f"committed offsets sum to {committed}: {offsets}")
        admin.delete_topics([topic], timeout_ms=15000)
    finally:
        admin.close()
    return (f"created topic, produced {N_MESSAGES} (partitions {partitions_used}), consumed "
            f"{N_MESSAGES} in group, committed; ListOffsets ok; group offsets sum {committed}")


# --------------------------------------------------------------------------- aiokafka
async def _aiokafka_main(bootstrap: str) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"tollguard-smoke-aio-{_suffix()}"
    group = f"tollguard-smoke-aio-group-{_suffix()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tollguard-smoke-aio")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=4, replication_factor=1)])
        for _ in range(75):
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"topic {topic} not listed after create")

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5,
                                    client_id="tollguard-smoke-aio-producer")
        await producer.start()
        try:
            futs = [await producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
                    for i in range(N_MESSAGES)]
            metas = await asyncio.gather(*futs)
        finally:
            await producer.stop()
        partitions_used = sorted({m.partition for m in metas})

        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    client_id="tollguard-smoke-aio-consumer")
        await consumer.start()
        try:
            seen: set[bytes] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(seen) < N_MESSAGES and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    seen.update(r.value for r in records)
            if len(seen) != N_MESSAGES:
                raise AssertionError(f"consumed {len(seen)} distinct records, expected {N_MESSAGES}")
            await consumer.commit()
            tps = [TopicPartition(topic, p) for p in range(4)]
            committed = 0
            for tp in tps:
                committed += (await consumer.committed(tp)) or 0
            end = await consumer.end_offsets(tps)
            if committed != N_MESSAGES or sum(end.values()) != N_MESSAGES:
                raise AssertionError(f"committed={committed} end_offsets={end}")
        finally:
            await consumer.stop()

        offsets = await admin.list_consumer_group_offsets(group)
        admin_sum = sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)
        if admin_sum != N_MESSAGES:
            raise AssertionError(f"admin group offsets sum to {admin_sum}: {offsets}")
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return (f"created topic, idempotent producer sent {N_MESSAGES} (partitions {partitions_used}), "
            f"consumed {N_MESSAGES} in group, committed {committed}; admin group offsets sum {admin_sum}")


def check_aiokafka(bootstrap: str) -> str:
    return asyncio.run(asyncio.wait_for(_aiokafka_main(bootstrap), timeout=120))


# --------------------------------------------------------------------------- faust
async def _create_topic_aiokafka(bootstrap: str, topic: str, partitions: int = 4) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tollguard-smoke-faust-admin")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=partitions,
                                            replication_factor=1)])
        for _ in range(75):
            if topic in await admin.list_topics():
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"topic {topic} not listed after create")
    finally:
        await admin.close()


def _faust_worker(bootstrap: str, topic_name: str, result_file: str, datadir: str) -> None:
    """Runs in a child process: a one-topic, one-agent faust app, stopped by itself."""
    import signal

    import faust

    app = faust.App(
        f"{topic_name}-app",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        topic_partitions=4,
        topic_replication_factor=1,
        web_enabled=False,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=6,
    )
    topic = app.topic(topic_name, value_type=str, partitions=4)
    state = {"count": 0}

    @app.agent(topic)
    async def counter(stream):
        async for _value in stream:
            state["count"] += 1
            if state["count"] == N_FAUST:
                with open(result_file, "w") as fh:
                    fh.write(str(state["count"]))
                os.kill(os.getpid(), signal.SIGTERM)  # graceful worker shutdown

    @app.task
    async def send_some():
        for i in range(N_FAUST):
            await topic.send(key=f"k{i}", value=f"v{i}")

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


def check_faust(bootstrap: str, timeout: float = 120) -> str:
    import faust  # noqa: F401  (fail here, clearly, if it is not installed)

    # Faust declares only its internal topics. A source topic that does not exist
    # when the worker subscribes is ignored by its assignor until the next metadata
    # refresh (5 min by default), even if a producer auto-creates it meanwhile, so
    # create the source topic first, as a deployment would.
    topic = f"tollguard-smoke-faust-{_suffix()}"
    asyncio.run(asyncio.wait_for(_create_topic_aiokafka(bootstrap, topic), timeout=30))
    with tempfile.TemporaryDirectory(prefix="tollguard-faust-smoke-") as tmp:
        result_file = os.path.join(tmp, "count")
        t0 = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [sys.executable, os.path.abspath(__file__), "--bootstrap", bootstrap,
             "--_faust-worker", topic, result_file],
            cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise AssertionError(f"faust worker did not finish in {timeout}s; output:\n{output[-3000:]}") from None
        elapsed = time.monotonic() - t0
        count = open(result_file).read() if os.path.exists(result_file) else None
        if count != str(N_FAUST):
            raise AssertionError(f"faust agent counted {count!r} (exit {proc.returncode}); "
                                 f"output:\n{output[-3000:]}")
    return f"worker joined, task sent {N_FAUST}, agent counted {count} in {elapsed:.1f}s (exit {proc.returncode})"


# --------------------------------------------------------------------------- main
CHECKS = {
    "kafka-python": check_kafka_python,
    "aiokafka": check_aiokafka,
    "faust": check_faust,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port of the broker")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(CHECKS),
                        help="skip a check (repeatable)")
    parser.add_argument("--_faust-worker", dest="faust_worker", nargs=2,
                        metavar=("TOPIC", "RESULT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.faust_worker:
        topic_name, result_file = args.faust_worker
        _faust_worker(args.bootstrap, topic_name, result_file,
                      os.path.join(os.getcwd(), "faust-data"))
        return 0

    passed = failed = 0
    for name, fn in CHECKS.items():
        if name in args.skip:
            print(f"SKIP {name}", flush=True)
            continue
        t0 = time.monotonic()
        try:
            detail = fn(args.bootstrap)
        except Exception as exc:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - t0:.1f}s): {detail}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
