"""Soak: one worker under a fixed CDR rate for a long time; lag and memory every minute (issue 14).

Starts ``tollguard worker`` (own topic prefix and app id, on ``KAFKA_BOOTSTRAP_SERVERS`` or
``--broker``) and produces CDRs at ``--rate`` per second for ``--minutes``: a simulated day of
``--customers`` customers (every episode kind) played again and again, each pass shifted one day
later with fresh call ids, so event time moves forward as in production. Every minute it prints
(and with ``--json FILE`` appends) one line: CDRs produced, CDRs the worker processed (its
``/metrics``), the group's lag on ``cdrs`` and ``cdrs-by-customer``, and the worker's RSS. Flat
lag and flat RSS after the first minutes are what a healthy worker shows.

    python bench/soak.py                     # 30 minutes at 200 CDR/s
    python bench/soak.py --minutes 3         # a short check

A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from kafka_fixtures import READY_LINE, bootstrap_of, free_port, group_lag  # noqa: E402

from tollguard.simulate import run_scenario  # noqa: E402

TIME_FIELDS = ("start", "answer", "end", "media_start")


def day_records(customers: int, seed: int) -> tuple[list[dict[str, Any]], timedelta]:
    """One simulated day (jsonl dicts, in arrival order) and the shift between passes."""
    sim = run_scenario("all", customers=customers, seed=seed)
    return [r.to_json_dict() for r in sim.records()], timedelta(days=1)


def shifted(record: dict[str, Any], passes: int, shift: timedelta) -> bytes:
    out = dict(record)
    for name in TIME_FIELDS:
        value = out.get(name)
        if value:
            out[name] = (datetime.fromisoformat(value.replace("Z", "+00:00")) + passes * shift).isoformat()
    out["call_id"] = f"{record['call_id']}-p{passes}"
    return json.dumps(out).encode()


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` (MiB) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def processed(port: int) -> int:
    """``tollguard_cdrs_processed_total`` of the worker's /metrics (loopback, no token)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(r"^tollguard_cdrs_processed_total (\S+)$", text, re.M)
    return int(float(match[1])) if match else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=200.0, help="CDRs per second")
    ap.add_argument("--customers", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--broker", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--json", type=Path, help="append each minute's figures as JSON lines to this file")
    args = ap.parse_args()

    from kafka import KafkaProducer

    bootstrap = bootstrap_of(args.broker)
    suffix = uuid.uuid4().hex[:8]
    prefix, app_id = f"soak-{suffix}.", f"tollguard-soak-{suffix}"
    base, shift = day_records(args.customers, args.seed)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tollguard-soak-") as tmp:
        log_path = Path(tmp) / "worker.log"
        env = dict(os.environ, PYTHONPATH=str(REPO), KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--broker", bootstrap, "--topic-prefix", prefix,
                 "--app-id", app_id, "--datadir", str(Path(tmp) / "data"), "--web-port", str(port), "-l", "info"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        producer = None
        try:
            deadline = time.monotonic() + 120
            while READY_LINE not in log_path.read_text("utf-8", "replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("worker not ready:\n" + log_path.read_text("utf-8", "replace")[-3000:])
                time.sleep(0.5)
            producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
            topics = [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"]
            print(f"soak: {args.minutes:g} min at {args.rate:g} CDR/s, {args.customers} customers, "
                  f"{len(base):,} CDRs a simulated day; worker pid {worker.pid}", flush=True)
            print(f"{'min':>5} {'produced':>10} {'processed':>10} {'lag cdrs':>9} {'lag repart':>10} {'RSS MiB':>8}",
                  flush=True)
            started = time.monotonic()
            sent, next_report, minute = 0, started + 60, 0
            end = started + args.minutes * 60
            while time.monotonic() < end:
                due = started + sent / args.rate
                now = time.monotonic()
                if due > now:
                    time.sleep(min(due - now, 0.05))
                else:
                    passes, index = divmod(sent, len(base))
                    producer.send(f"{prefix}cdrs", value=shifted(base[index], passes, shift))
                    sent += 1
                if time.monotonic() >= next_report:
                    minute += 1
                    next_report += 60
                    producer.flush()
                    lag = group_lag(bootstrap, app_id, topics)
                    row = {"minute": minute, "produced": sent, "processed": processed(port),
                           "lag_cdrs": lag[topics[0]], "lag_repartition": lag[topics[1]],
                           "rss_mib": round(rss_mib(worker.pid), 1), "worker_alive": worker.poll() is None}
                    print(f"{minute:>5} {sent:>10,} {row['processed']:>10,} {row['lag_cdrs']:>9,} "
                          f"{row['lag_repartition']:>10,} {row['rss_mib']:>8.1f}", flush=True)
                    if args.json:
                        with open(args.json, "a", encoding="utf-8") as out:
                            out.write(json.dumps(row) + "\n")
                    if worker.poll() is not None:
                        raise RuntimeError("worker died:\n" + log_path.read_text("utf-8", "replace")[-3000:])
        finally:
            if producer is not None:
                producer.close()
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    main()
