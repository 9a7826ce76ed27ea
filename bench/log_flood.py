"""How many log lines a worker writes while its broker is away (issue 14: 123,734 lines in a 30 s outage).

A private broker (``infra/kafka/start.sh`` on free ports; the shared broker is never touched), one
worker at ``--loglevel``, a simulated hour produced and processed; then the broker is stopped for
``--outage`` seconds, started again on its data, and the worker given ``--settle`` seconds to
reconnect. Printed: the lines and bytes the worker's log grew by from the stop to the end of the
settle time, the most frequent messages, and whether the worker processed CDRs produced after.

    python bench/log_flood.py                         # this checkout's worker, 30 s outage, -l warn
    python bench/log_flood.py --code ../other-checkout --loglevel info

``--code DIR`` runs the worker of another checkout (PYTHONPATH=DIR), e.g. a version without the
log filters, for a before/after figure. A script, not a test.
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
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from kafka_fixtures import PrivateBroker, free_port, wait_for_lag_zero  # noqa: E402

from tollguard.simulate import run_scenario, write  # noqa: E402


def produce(bootstrap: str, prefix: str, path: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "streams.cli", "produce", str(path), "--broker", bootstrap, "--topic",
                    f"{prefix}cdrs", "--format", "jsonl", "-q"], cwd=REPO, env=env, check=True, timeout=300)


def drained(bootstrap: str, group: str, topics: list[str], timeout: float = 180) -> None:
    """Until the group committed everything on ``topics`` (retrying while the broker settles)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait_for_lag_zero(bootstrap, group, topics, timeout=max(1.0, deadline - time.monotonic()))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def shape(line: str) -> str:
    """A log line without its time stamp and numbers: what repeats."""
    return re.sub(r"\d+", "N", line.split("]", 1)[-1])[:110]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outage", type=float, default=30.0, help="seconds the broker is away")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds counted after the broker is back")
    ap.add_argument("--loglevel", default="warn")
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose worker runs (PYTHONPATH)")
    ap.add_argument("--json", type=Path, help="also append the figures as one JSON line to this file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tollguard-logflood-") as tmp_dir:
        tmp = Path(tmp_dir)
        broker = PrivateBroker(tmp / "kafka")
        worker = None
        try:
            env = dict(os.environ, PYTHONPATH=str(args.code.resolve()), KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                       PYTHONUNBUFFERED="1")
            hour1, hour2 = tmp / "hour1.jsonl", tmp / "hour2.jsonl"
            records = list(run_scenario("all", customers=5, seed=3, minutes=120).records())
            write(records[: len(records) // 2], "jsonl", hour1)
            write(records[len(records) // 2 :], "jsonl", hour2)
            prefix, app_id = "flood.", "tollguard-logflood"
            log_path = tmp / "worker.log"
            with open(log_path, "wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "worker", "--broker", broker.bootstrap, "--topic-prefix",
                     prefix, "--app-id", app_id, "--datadir", str(tmp / "data"), "--web-port", str(free_port()),
                     "-l", args.loglevel],
                    cwd=args.code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            produce(broker.bootstrap, prefix, hour1, env)
            topics = [f"{prefix}cdrs", f"{prefix}cdrs-by-customer"]
            drained(broker.bootstrap, app_id, topics)
            time.sleep(3)
            before = log_path.read_bytes()
            broker.stop()
            time.sleep(args.outage)
            broker.restart()
            time.sleep(args.settle)
            during = log_path.read_bytes()[len(before):]
            started = time.monotonic()
            produce(broker.bootstrap, prefix, hour2, env)
            drained(broker.bootstrap, app_id, topics)
            lines = during.decode("utf-8", "replace").splitlines()
            figures = {
                "code": str(args.code), "loglevel": args.loglevel, "outage_s": args.outage, "settle_s": args.settle,
                "lines": len(lines), "bytes": len(during), "worker_alive": worker.poll() is None,
                "processed_after_s": round(time.monotonic() - started, 1),
            }
            print(json.dumps(figures))
            for text, n in Counter(shape(x) for x in lines).most_common(8):
                print(f"{n:>8}  {text}")
            if args.json:
                with open(args.json, "a", encoding="utf-8") as out:
                    out.write(json.dumps(figures) + "\n")
        finally:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
            broker.close()


if __name__ == "__main__":
    main()
