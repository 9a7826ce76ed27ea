"""Benchmark of the streaming job on a real Kafka broker (not a test).

    python bench/bench_stream.py [--bootstrap HOST:PORT] [--cdrs 200000] [--rate 2000] [--seconds 60]
                                 [--profile] [--skip-throughput] [--skip-latency]

Without ``--bootstrap`` (or ``KAFKA_BOOTSTRAP_SERVERS``) it starts its own broker with
``infra/kafka/start.sh`` on free ports and stops it at the end. Every run uses fresh
topics (a uuid prefix) and a fresh app id.

(a) Throughput. ``--cdrs`` simulated CDRs (``tollguard.simulate``, "all" scenario, about
1,000 customers per 100k CDRs over two simulated days, asterisk-csv lines) are produced to
``cdrs`` before anything consumes them, with the same code as ``tollguard produce``.

* bare consumer: an aiokafka consumer (new group, from the earliest offset) reads the
  whole ``cdrs`` topic and does nothing with it; rate = CDRs / (last record received -
  first record received), so its group join is not counted.
* worker: one ``tollguard worker`` subprocess (memory store, 4 partitions, INFO logs to a
  file). Its progress is timed with the broker's record timestamps, all set by the
  worker's own producer on this host: start = the earliest record on ``cdrs-by-customer``
  (the parse agent's first output, so the group join and table recovery are excluded),
  end = the latest record on the state table's changelog and the output topics once the
  group's committed offsets show no lag on ``cdrs`` and ``cdrs-by-customer`` (every CDR
  was parsed, repartitioned, run through the detectors and its state written). The same
  timestamps give the parse agent's own rate (span of ``cdrs-by-customer``).
  With ``--profile`` py-spy samples the worker during this run and the hottest frames
  are printed (py-spy must be installed).

(b) Latency. A simulated stream is offered at ``--rate`` CDRs/s for ``--seconds`` by
``tollguard produce --rate`` (paced on an absolute schedule) into a running worker. Among
the CDRs, one in ``--probe-every`` is a probe: a CDR of one of four probe customers (one
per partition of ``cdrs-by-customer``) that ended a day before that customer's first CDR,
so the detect agent refuses it as late and writes it to ``cdrs-dead-letter`` at once.
A probe therefore takes the whole path an event takes (produce -> ``cdrs`` -> parse ->
``cdrs-by-customer`` -> detect -> an output topic) but changes no state and fires no
detector, so it measures the pipeline without perturbing the work it sits in. Latency
of a probe = the wall-clock time a consumer (fetch wait 5 ms) receives its dead letter
minus the producer's send time (the record's CreateTime on ``cdrs``); both clocks are
this host's. p50/p90/p99/max over the probes are printed (``--warmup N`` leaves out those
sent in the first N seconds, while a fresh worker fills its caches), with the offered rate
actually achieved and the lag left at the end. A worker that cannot keep up with the
offered rate shows a latency that grows for the whole run (``BENCH_DEBUG=FILE`` prints the
latency over time and keeps the worker's log in FILE).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_replay import diversify, run_child  # noqa: E402
from kafka_fixtures import (  # noqa: E402
    WorkerProcess,
    _local_broker,
    _local_broker_problem,
    group_lag,
    unique_names,
    wait_for_lag_zero,
)

from engine.registry import load_rules  # noqa: E402
from streams.app import partition_of  # noqa: E402
from streams.produce import ensure_topics, produce_files  # noqa: E402
from tollguard.adapters import write_record  # noqa: E402
from tollguard.cdr import Disposition  # noqa: E402
from tollguard.simulate import run_scenario  # noqa: E402

PARTITIONS = 4
COL_UNIQUEID = 16


# --------------------------------------------------------------------------- data


def _records(n: int, seed: int) -> list:
    """``n`` simulated CDRs in arrival order: "all" scenario, n/1000 customers, days as needed.

    The benign customers' remote numbers get realistic diversity (``bench_replay.diversify``:
    0.6-0.7 distinct numbers per CDR, as in independently generated traffic), so number parsing is
    measured on cache misses as in the field, not on the simulator's few repeated numbers."""
    customers, minutes = max(10, n // 1000), 2880
    while True:
        sim = run_scenario("all", customers=customers, minutes=minutes, seed=seed)
        fraud = {label.customer_id for label in sim.labels}
        records = list(islice(diversify(sim.records(), fraud), n))
        if len(records) >= n:
            return records
        minutes *= 2


def simulated(path: Path, n: int, seed: int) -> int:
    """Write ``n`` simulated CDRs (arrival order) as asterisk-csv; returns the count."""
    with open(path, "w", encoding="utf-8") as out:
        for rec in _records(n, seed):
            out.write(write_record("asterisk-csv", rec) + "\n")
    return n


def probe_customers() -> list[str]:
    """One probe customer id per partition of cdrs-by-customer."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < PARTITIONS:
        cid = f"probe-{i:03d}"
        found.setdefault(partition_of(cid.encode(), PARTITIONS), cid)
        i += 1
    return [found[p] for p in sorted(found)]


def with_probes(path: Path, n: int, every: int, seed: int) -> int:
    """Simulated CDRs with a late probe CDR after every ``every``-th line; returns the probes."""
    probes = probe_customers()
    records = _records(n, seed)
    template = records[0]
    fresh_end = records[-1].end  # the probe customers' first CDR: the newest of the run
    stale_end = fresh_end - timedelta(days=1)  # every later probe: a day late

    def probe(call_id: str, customer_id: str, end: datetime) -> str:
        rec = template.model_copy(
            update={"call_id": call_id, "customer_id": customer_id, "start": end - timedelta(seconds=30),
                    "answer": None, "end": end, "duration_s": 30.0, "billsec_s": 0.0,
                    "disposition": Disposition.NO_ANSWER, "hangup_cause": 19}
        )
        return write_record("asterisk-csv", rec) + "\n"

    n_probes = 0
    with open(path, "w", encoding="utf-8") as out:
        for i, rec in enumerate(records):
            if i < len(probes):  # establish each probe customer's watermark first
                out.write(probe(f"probe-first-{i}", probes[i], fresh_end))
            out.write(write_record("asterisk-csv", rec) + "\n")
            if i % every == every - 1:
                out.write(probe(f"probe-{n_probes:07d}", probes[n_probes % len(probes)], stale_end))
                n_probes += 1
    return n_probes


# --------------------------------------------------------------------------- kafka helpers


def edge_timestamps(bootstrap: str, topics: list[str]) -> tuple[float | None, float | None]:
    """(earliest, latest) record timestamps (s) over the first and last record of every partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    lo: float | None = None
    hi: float | None = None
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            if ends[tp] <= begins[tp]:
                continue
            for offset in (begins[tp], ends[tp] - 1):
                consumer.assign([tp])
                consumer.seek(tp, offset)
                recs: list = []
                deadline = time.monotonic() + 10
                while not recs and time.monotonic() < deadline:
                    recs = consumer.poll(timeout_ms=200, max_records=1).get(tp, [])
                if recs:
                    ts = recs[0].timestamp / 1000
                    lo = ts if lo is None else min(lo, ts)
                    hi = ts if hi is None else max(hi, ts)
    finally:
        consumer.close()
    return lo, hi


def record_count(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` (end minus beginning offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()


async def _bare_consume(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-bare-{os.getpid()}-{time.time_ns()}",
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=500,
    )
    await consumer.start()
    try:
        got, first, started = 0, None, time.perf_counter()
        while got < n:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                if first is None:
                    first = time.perf_counter()
                got += len(records)
        end = time.perf_counter()
        return (first or end) - started, (end - (first or end))
    finally:
        await consumer.stop()


def bare_consumer_rate(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """(join seconds, CDRs/s) of a bare aiokafka consumer reading ``n`` records of ``topic``."""
    join_s, span_s = asyncio.run(_bare_consume(bootstrap, topic, n))
    return join_s, n / span_s


def profile_summary(raw: Path, top: int = 18) -> str:
    """Hottest frames of a py-spy ``--format raw`` file: inclusive and self shares."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.replace(str(REPO) + "/", "") for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "(no samples)"
    skip = ("run_forever", "run_until_complete", "_run_once", "Handle._run", "_bootstrap", "<module>",
            "_run_module", "_run_code", "main (", "__call__", "invoke", "Worker.execute", "run_worker",
            "worker (streams/cli", "wrapper", "_main (", "Thread.run", "WorkerThread", "_start_thread",
            "Agent._execute_actor", "_execute_task")
    lines = [f"py-spy --gil: {total} samples (the thread holding the GIL)", "  inclusive:"]
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(200)
              if not any(s in k for s in skip)][:top]
    lines.append("  self:")
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in own.most_common(top // 2)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the two runs


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_throughput(bootstrap: str, n: int, work: Path, profile: bool) -> dict[str, float | str]:
    rules = load_rules(None)
    data = work / "throughput.csv"
    n = simulated(data, n, seed=3)
    prefix, app_id = unique_names("bench-tp")
    cdrs = f"{prefix}cdrs"
    ensure_topics(bootstrap, {cdrs: PARTITIONS})
    t = time.perf_counter()
    produce_files([data], bootstrap, cdrs, rules, flush=False)
    produce_s = time.perf_counter() - t

    join_s, bare_rate = bare_consumer_rate(bootstrap, cdrs, n)

    worker = WorkerProcess(bootstrap, prefix, app_id, work / "worker-tp")
    spy = None
    with ExitStack() as stack:
        stack.callback(worker.stop)
        t = time.perf_counter()
        worker.start()
        ready_s = time.perf_counter() - t
        assert worker.proc is not None
        cpu_ready = process_cpu_s(worker.proc.pid)
        if profile and worker.proc is not None:
            if shutil.which("py-spy") is None:
                print("--profile: py-spy not found, skipping the profile", file=sys.stderr)
            else:
                spy = subprocess.Popen(
                    ["py-spy", "record", "--gil", "-p", str(worker.proc.pid), "-f", "raw", "-r", "100", "-o",
                     str(work / "worker-profile.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
        topics = [cdrs, f"{prefix}cdrs-by-customer"]
        wait_for_lag_zero(bootstrap, app_id, topics, timeout=3600, worker=worker)
        worker_cpu = process_cpu_s(worker.proc.pid) - cpu_ready
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    first, _ = edge_timestamps(bootstrap, [f"{prefix}cdrs-by-customer"])
    _, parsed_last = edge_timestamps(bootstrap, [f"{prefix}cdrs-by-customer"])
    outputs = [f"{app_id}-customer-state-changelog", f"{prefix}cdrs-dead-letter", f"{prefix}suspensions",
               f"{prefix}alerts", f"{prefix}capacity-increases", f"{prefix}compliance-notices"]
    _, last = edge_timestamps(bootstrap, outputs)
    writes = record_count(bootstrap, f"{app_id}-customer-state-changelog")
    assert first is not None and last is not None and parsed_last is not None
    result: dict[str, float | str] = {
        "cdrs": n,
        "produce_rate": n / produce_s,
        "bare_join_s": join_s,
        "bare_rate": bare_rate,
        "worker_ready_s": ready_s,
        "worker_s": last - first,
        "worker_rate": n / (last - first),
        "parse_rate": n / max(parsed_last - first, 1e-9),
        "writes_per_cdr": writes / n,
        "worker_cpu_s": worker_cpu,
        "worker_cpu_rate": n / max(worker_cpu, 1e-9),
    }
    # The same file through tollguard replay (one core, a fresh interpreter): the engine and the
    # detectors without Kafka or Faust, i.e. what the worker's own work costs.
    rep = run_child("replay", data, "asterisk-csv", None)
    result.update(replay_cpu_s=rep["cpu_seconds"], replay_cpu_rate=n / max(rep["cpu_seconds"], 1e-9),
                  replay_events=rep["events"])
    if spy is not None and (work / "worker-profile.txt").exists():
        result["profile"] = profile_summary(work / "worker-profile.txt")
        keep = os.environ.get("BENCH_PROFILE_RAW")
        if keep:  # the raw py-spy stacks, for a closer look (flamegraph tools read this format)
            shutil.copyfile(work / "worker-profile.txt", keep)
    return result


def run_latency(
    bootstrap: str, rate: float, seconds: float, every: int, work: Path, warmup: float = 0.0
) -> dict[str, float]:
    n = int(rate * seconds)
    data = work / "latency.csv"
    n_probes = with_probes(data, n, every, seed=5)
    prefix, app_id = unique_names("bench-lat")
    worker = WorkerProcess(bootstrap, prefix, app_id, work / "worker-lat")
    probes = ProbeReader(bootstrap, f"{prefix}cdrs-dead-letter")
    with ExitStack() as stack:
        stack.callback(worker.stop)
        worker.start()
        probes.start()
        stack.callback(probes.stop)
        time.sleep(1.0)
        lag = offer(bootstrap, prefix, app_id, worker, data, rate, probes, n_probes)
    sent, first_ts, last_ts = probe_send_times(bootstrap, f"{prefix}cdrs")
    timeline = sorted((sent[c], probes.received[c] - sent[c], c) for c in sent if c in probes.received)
    if os.environ.get("BENCH_DEBUG"):
        print_timeline(timeline, probes.stamped, sent)
    lat = sorted(x for t, x, _ in timeline if t >= timeline[0][0] + warmup)
    if not lat:
        raise RuntimeError("no probe came back")

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    assert first_ts is not None and last_ts is not None
    return {
        "offered": (n + n_probes) / max(last_ts - first_ts, 1e-9),
        "seconds": last_ts - first_ts,
        "probes": n_probes,
        "returned": len(timeline),
        "measured": len(lat),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": lat[-1],
        "mean": statistics.fmean(lat),
        "lag_end": lag,
    }


class ProbeReader:
    """A thread reading the dead letters of the probes as they come back (fetch wait 5 ms).

    ``received``: probe call id -> wall-clock time it was read; ``stamped``: -> CreateTime of
    the dead letter (the worker's send time).
    """

    def __init__(self, bootstrap: str, dead_letter_topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = dead_letter_topic
        self.received: dict[str, float] = {}
        self.stamped: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._consume, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=5, client_id="bench-latency")
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            while not self._stop.is_set():
                for recs in consumer.poll(timeout_ms=50).values():
                    now = time.time()
                    for r in recs:
                        self._take(r, now)
        finally:
            consumer.close()

    def _take(self, record: Any, now: float) -> None:
        raw = json.loads(record.value).get("raw", "")
        if '"call_id":"probe-' in raw:
            call_id = json.loads(raw)["call_id"]
            self.received[call_id] = now
            self.stamped[call_id] = record.timestamp / 1000


def offer(
    bootstrap: str, prefix: str, app_id: str, worker: WorkerProcess, data: Path, rate: float,
    probes: ProbeReader, n_probes: int,
) -> int:
    """Produce ``data`` at ``rate`` into the running worker, wait until it is through; the lag left on ``cdrs``."""
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "produce", str(data), "--topic", f"{prefix}cdrs",
         "--rate", str(rate), "-q"],
        cwd=REPO, env=env, check=True,
    )
    wait_for_lag_zero(bootstrap, app_id, [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"], timeout=3600,
                      worker=worker)
    deadline = time.monotonic() + 10
    while len(probes.received) < n_probes and time.monotonic() < deadline:
        time.sleep(0.2)
    lag = sum(group_lag(bootstrap, app_id, [f"{prefix}cdrs"]).values())
    if os.environ.get("BENCH_DEBUG"):
        Path(os.environ["BENCH_DEBUG"]).write_text(worker.log())
        for line in worker.log().splitlines():
            if "WARN" in line or "ERROR" in line:
                print("  worker:", line[:200], file=sys.stderr)
    return lag


def probe_send_times(bootstrap: str, topic: str) -> tuple[dict[str, float], float | None, float | None]:
    """(probe call id -> CreateTime of its record on ``topic``, first and last CreateTime of the topic)."""
    from kafka import KafkaConsumer, TopicPartition

    sent: dict[str, float] = {}
    first_ts: float | None = None
    last_ts: float | None = None
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for recs in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in recs:
                    ts = r.timestamp / 1000
                    first_ts = ts if first_ts is None else min(first_ts, ts)
                    last_ts = ts if last_ts is None else max(last_ts, ts)
                    if b'"probe-' in r.value:
                        call_id = next(csv.reader(io.StringIO(r.value.decode())))[COL_UNIQUEID]
                        if call_id.startswith("probe-") and not call_id.startswith("probe-first"):
                            sent[call_id] = ts
    finally:
        consumer.close()
    return sent, first_ts, last_ts


def print_timeline(
    timeline: list[tuple[float, float, str]], stamped: dict[str, float], sent: dict[str, float]
) -> None:
    """Latency over time (about twenty lines), for BENCH_DEBUG."""
    for i in range(0, len(timeline), max(1, len(timeline) // 20)):
        t0, c = timeline[0][0], timeline[i]
        worker_ms = 1000 * (stamped[c[2]] - sent[c[2]])
        print(f"  t+{c[0] - t0:6.1f}s latency {1000 * c[1]:7.0f} ms (worker send {worker_ms:7.0f} ms)",
              file=sys.stderr)

# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--cdrs", type=int, default=200_000, help="CDRs of the throughput run")
    parser.add_argument("--rate", type=float, default=2000, help="offered CDRs/s of the latency run")
    parser.add_argument("--seconds", type=float, default=60, help="length of the latency run")
    parser.add_argument("--probe-every", type=int, default=20, help="one probe after every N CDRs")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="leave out probes sent in the first N seconds (a fresh worker's cold caches)")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker in the throughput run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = parser.parse_args()

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tollguard-bench-")))
        bootstrap = args.bootstrap
        if not bootstrap:
            problem = _local_broker_problem()
            if problem:
                print(problem, file=sys.stderr)
                return 2
            broker = _local_broker(work / "kafka-run")
            bootstrap = next(broker)
            stack.callback(lambda: next(broker, None))
        print(f"broker {bootstrap}; {os.cpu_count()} CPU(s)", file=sys.stderr)
        rows: list[tuple[str, str]] = []
        raw: dict[str, Any] = {}
        if not args.skip_throughput:
            tp = run_throughput(bootstrap, args.cdrs, work, args.profile)
            raw["throughput"] = {k: v for k, v in tp.items() if k != "profile"}
            rows += [
                ("CDRs (throughput run)", f"{tp['cdrs']:,}"),
                ("produce (kafka-python, keyed)", f"{tp['produce_rate']:,.0f} CDRs/s"),
                ("bare aiokafka consumer", f"{tp['bare_rate']:,.0f} CDRs/s (join {tp['bare_join_s']:.1f} s)"),
                ("worker ready after", f"{tp['worker_ready_s']:.1f} s"),
                ("worker: parse agent", f"{tp['parse_rate']:,.0f} CDRs/s"),
                ("worker: end to end", f"{tp['worker_rate']:,.0f} CDRs/s ({tp['worker_s']:.1f} s)"),
                ("worker / bare consumer", f"{float(tp['worker_rate']) / float(tp['bare_rate']):.3f}"),
                ("worker CPU (every thread)", f"{tp['worker_cpu_s']:.1f} s = {tp['worker_cpu_rate']:,.0f} CDRs/s CPU "
                 f"({1e6 / float(tp['worker_cpu_rate']):,.0f} µs per CDR)"),
                ("replay of the same file", f"{tp['replay_cpu_rate']:,.0f} CDRs/s CPU "
                 f"({1e6 / float(tp['replay_cpu_rate']):,.0f} µs per CDR; {tp['replay_events']} events)"),
                ("state-table writes per CDR", f"{tp['writes_per_cdr']:.3f}"),
            ]
        if not args.skip_latency:
            lat = run_latency(bootstrap, args.rate, args.seconds, args.probe_every, work, args.warmup)
            raw["latency"] = dict(lat, rate=args.rate)
            rows += [
                ("offered load (achieved)", f"{lat['offered']:,.0f} CDRs/s for {lat['seconds']:.0f} s"),
                ("probes returned", f"{lat['returned']:,} / {lat['probes']:,}"),
                ("probes measured (after warm-up)", f"{lat['measured']:,} (warm-up {args.warmup:.0f} s)"),
                ("latency p50", f"{1000 * lat['p50']:,.0f} ms"),
                ("latency p90", f"{1000 * lat['p90']:,.0f} ms"),
                ("latency p99", f"{1000 * lat['p99']:,.0f} ms"),
                ("latency max", f"{1000 * lat['max']:,.0f} ms"),
                ("lag on cdrs at the end", f"{lat['lag_end']:,}"),
            ]
        if args.json is not None:
            args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")
        width = max(len(k) for k, _ in rows)
        print(f"\n{'measure':<{width}}  value")
        print(f"{'-' * width}  {'-' * 34}")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        if not args.skip_throughput and "profile" in tp:
            print()
            print(tp["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
