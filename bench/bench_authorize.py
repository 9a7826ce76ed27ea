"""Benchmark of call authorization at call setup (DESIGN §4b; not a test).

    python bench/bench_authorize.py [--customers 5000] [--calls 200000] [--suspended 0.03] [--seed 0]
                                    [--http-rate 1000] [--http-seconds 20] [--http-concurrency 8]
                                    [--skip-http] [--json FILE]

Data (seeded, built in memory): ``--customers`` customers in five countries (IT, GB, DE,
FR, US; 1 to 5 DIDs each, in the rules), each with an engine state
(``engine.core.CustomerState``); ``--suspended`` of them hold one to three suspensions
in force, of every scope kind in turn (account, did, cli, outbound_international,
destination_prefix with the country's premium ranges and the rules' high-risk prefixes).
Calls: a random customer each (the suspended ones as often as the others), 30 % inbound
to one of its DIDs, 70 % outbound presenting one of them, to numbers drawn at random
(national fixed and mobile, international, premium, high-risk, emergency) and written as
switches write them (E.164, national with trunk prefix, ``00`` international prefix), so
most numbers are new to the memoised normaliser the first time.

(a) In process: :class:`engine.enforcement.Authorizer` over the engine's
``active_suspensions`` of every state, as the worker builds it. The time of one index
rebuild (all states read), then per-call latency (``time.perf_counter_ns`` around one
``authorize``) over ``--calls`` calls, twice: *cold* (first sight of most numbers:
libphonenumber parses them) and *warm* (the same calls again: memoised).

(b) HTTP: a server subprocess serves the worker's views (``streams.web.register_views``
on a Faust app, with ``TOLLGUARD_API_TOKEN`` set, so authentication is on the path) on
127.0.0.1 only, over the same data; the load generator (one request at a time on each
of ``--http-concurrency`` keep-alive connections) offers ``--http-rate`` requests/s for
``--http-seconds`` on an absolute schedule. Latency = response received - request sent,
client side, by a load generator that writes HTTP/1.1 on keep-alive connections itself
(cheap, so it perturbs the server little; both processes share this host's CPUs). Prints p50/p90/p99/max, the rate
achieved and the answers (allowed / refused / other).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.core import CustomerState, Engine  # noqa: E402
from engine.enforcement import Authorizer  # noqa: E402
from engine.registry import Rules, load_rules  # noqa: E402

TOKEN = "bench-authorize-token-0123456789"

#: country -> (country code, trunk prefix, national fixed pattern, mobile pattern, premium ranges (E.164), emergency)
COUNTRIES: dict[str, dict[str, Any]] = {
    "IT": {"cc": "39", "trunk": "", "fixed": ["02#######", "06########", "051#######"], "mobile": ["3#########"],
           "premium": ["+39899", "+39892"], "emergency": ["112", "113", "118"]},
    "GB": {"cc": "44", "trunk": "0", "fixed": ["20########", "161#######"], "mobile": ["7#########"],
           "premium": ["+44909", "+44871"], "emergency": ["999", "112"]},
    "DE": {"cc": "49", "trunk": "0", "fixed": ["30########", "89########"], "mobile": ["151########"],
           "premium": ["+49900"], "emergency": ["112", "110"]},
    "FR": {"cc": "33", "trunk": "0", "fixed": ["1########", "4########"], "mobile": ["6########"],
           "premium": ["+33899", "+33897"], "emergency": ["112", "15", "17"]},
    "US": {"cc": "1", "trunk": "", "fixed": ["212#######", "415#######"], "mobile": ["646#######"],
           "premium": ["+1900"], "emergency": ["911"]},
}
HIGH_RISK = ["+979", "+881", "+882", "+883", "+53", "+252"]
SCOPE_KINDS = ("account", "did", "cli", "outbound_international", "destination_prefix")


def digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if c == "#" else c for c in pattern)


def national(rng: random.Random, country: str, mobile: bool = False) -> str:
    """A national significant number of ``country`` (no trunk prefix)."""
    info = COUNTRIES[country]
    return digits(rng, rng.choice(info["mobile"] if mobile else info["fixed"]))


def written(rng: random.Random, country: str, nsn: str, home: str) -> str:
    """``+cc nsn`` as a switch in ``home`` might write it: E.164, 00-international, or national."""
    cc = COUNTRIES[country]["cc"] if country in COUNTRIES else country
    form = rng.random()
    if country == home and form < 0.5:
        return COUNTRIES[home]["trunk"] + nsn
    if form < 0.75 and home != "US":
        return "00" + cc + nsn
    return "+" + cc + nsn


# --------------------------------------------------------------------------- data


def build(customers: int, suspended: float, seed: int) -> tuple[Rules, list[CustomerState], dict[str, Any]]:
    """Rules (countries, DIDs), one engine state per customer, suspensions in some; and facts for the calls."""
    rng = random.Random(seed)
    base = load_rules(None)
    custs: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    countries = list(COUNTRIES)
    for i in range(customers):
        cid = f"cust-{i:05d}"
        country = countries[i % len(countries)]
        dids = ["+" + COUNTRIES[country]["cc"] + national(rng, country) for _ in range(rng.randint(1, 5))]
        custs[cid] = {"country": country, "dids": {d: {} for d in dids}}
        facts[cid] = {"country": country, "dids": dids}
    rules = Rules(**{**base.model_dump(exclude={"customers", "version"}), "version": "bench", "customers": custs})
    engine = Engine(rules, detectors=[])
    states = []
    chosen = set(rng.sample(sorted(facts), int(customers * suspended)))
    n_susp = 0
    kinds = Counter()
    for k, cid in enumerate(sorted(facts)):
        state = engine.new_state(cid)
        if cid in chosen:
            f = facts[cid]
            for j in range(rng.randint(1, 3)):
                kind = SCOPE_KINDS[(k + j) % len(SCOPE_KINDS)]
                if kind == "account" and j:  # an account suspension hides the others: only as the first
                    kind = "cli"
                value = {
                    "account": cid, "outbound_international": cid,
                    "did": rng.choice(f["dids"]), "cli": rng.choice(f["dids"]),
                    "destination_prefix": rng.choice(COUNTRIES[f["country"]]["premium"] + HIGH_RISK),
                }[kind]
                event_id = f"susp-{cid}-{j}"
                state.open[f"suspension|bench|{kind}|{value}|{j}"] = {
                    "event_id": event_id, "type": "suspension", "detector": "bench", "scope_kind": kind,
                    "scope_value": value, "first_s": 1.0e9 + j, "last_s": 1.0e9 + j,
                    "reason": f"bench suspension of {kind} {value}", "evidence": {}, "updates": 0,
                    "status": "active" if j % 4 else "confirmed",
                }
                n_susp += 1
                kinds[kind] += 1
        # a little of what a live state holds besides suspensions (alerts), so the scan is not trivial
        state.open[f"alert|bench|account|{cid}|x"] = {
            "event_id": f"alert-{cid}", "type": "alert", "detector": "bench", "scope_kind": "account",
            "scope_value": cid, "first_s": 1.0e9, "last_s": 1.0e9, "reason": "", "evidence": {}, "updates": 0,
            "status": "active",
        }
        states.append(state)
    return rules, states, {"facts": facts, "suspended_customers": len(chosen), "suspensions": n_susp,
                           "by_kind": dict(kinds)}


def calls(n: int, facts: dict[str, Any], seed: int) -> list[tuple[str, str, str, str]]:
    """``n`` calls (customer, caller, callee, did) as a switch would ask about them."""
    rng = random.Random(seed + 1)
    customers = sorted(facts)
    out = []
    for _ in range(n):
        cid = rng.choice(customers)
        f = facts[cid]
        home = f["country"]
        did = rng.choice(f["dids"])
        if rng.random() < 0.3:  # inbound: someone calls one of its DIDs
            abroad = rng.choice(list(COUNTRIES)) if rng.random() < 0.2 else home
            caller = written(rng, abroad, national(rng, abroad, rng.random() < 0.5), home)
            out.append((cid, caller, did, did))
            continue
        r = rng.random()
        if r < 0.55:
            callee = written(rng, home, national(rng, home, rng.random() < 0.4), home)
        elif r < 0.80:
            abroad = rng.choice([c for c in COUNTRIES if c != home])
            callee = written(rng, abroad, national(rng, abroad, rng.random() < 0.4), home)
        elif r < 0.90:
            prefix = rng.choice(COUNTRIES[home]["premium"])
            callee = prefix + digits(rng, "#" * (10 - len(prefix)))
        elif r < 0.98:
            callee = rng.choice(HIGH_RISK) + digits(rng, "########")
        else:
            callee = rng.choice(COUNTRIES[home]["emergency"])
        presented = did if rng.random() < 0.8 else written(rng, home, did[1 + len(COUNTRIES[home]["cc"]):], home)
        out.append((cid, presented, callee, "" if rng.random() < 0.5 else did))
    return out


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50 / p90 / p99 / p99.9 / max in microseconds."""
    s = sorted(samples_ns)

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return {"p50_us": at(0.50), "p90_us": at(0.90), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": s[-1] / 1000}


# --------------------------------------------------------------------------- (a) in process


def in_process(rules: Rules, states: list[CustomerState], work: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    engine = Engine(rules, detectors=[])
    authorizer = Authorizer(rules, lambda: [r for s in states for r in engine.active_suspensions(s)])
    rebuilds = []
    for _ in range(5):
        authorizer.changed()
        t = time.perf_counter_ns()
        authorizer.index()
        rebuilds.append(time.perf_counter_ns() - t)
    out: dict[str, Any] = {"rebuild_ms": statistics.median(rebuilds) / 1e6}
    held = set(authorizer.index().customers)
    for label in ("cold", "warm"):
        lat, lat_held = [], []
        answers: Counter[str] = Counter()
        authorize, clock = authorizer.authorize, time.perf_counter_ns
        for customer, caller, callee, did in work:
            t = clock()
            answer = authorize(customer, caller, callee, did)
            took = clock() - t
            lat.append(took)
            if customer in held:
                lat_held.append(took)
            answers["allow" if answer.allow else "refuse:" + str(answer.scope_kind)] += 1
        out[label] = {**percentiles(lat), "calls_per_s": len(lat) / (sum(lat) / 1e9), "answers": dict(answers),
                      "customers_with_suspensions": {**percentiles(lat_held), "calls": len(lat_held)}}
    return out


# --------------------------------------------------------------------------- (b) HTTP


def serve(args: argparse.Namespace) -> None:
    """The server subprocess: the worker's views over the bench data on 127.0.0.1:port."""
    import faust
    from aiohttp import web

    from streams.web import Metrics, register_views

    rules, states, _ = build(args.customers, args.suspended, args.seed)
    engine = Engine(rules, detectors=[])
    app = faust.App("bench-authorize", broker="kafka://127.0.0.1:1", web_port=args.port)

    async def send_verdict(*_: Any) -> None:
        return None

    register_views(app, engine, lambda: states, deque(maxlen=10), Metrics(), send_verdict,
                   environ={"TOLLGUARD_API_TOKEN": TOKEN, "TOLLGUARD_WEB_BIND": "127.0.0.1"})

    async def main() -> None:
        app.tables.recovery.completed.set()  # no tables to recover: ready
        runner = web.AppRunner(app.web.web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand so the load generator costs little CPU."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def get(self, target: str) -> tuple[int, bytes]:
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def target(call: tuple[str, str, str, str]) -> str:
    from urllib.parse import urlencode

    customer, caller, callee, did = call
    params = {"customer": customer, "caller": caller, "callee": callee}
    if did:
        params["did"] = did
    return "/v1/authorize?" + urlencode(params)


async def load(port: int, work: list[tuple[str, str, str, str]], rate: float, seconds: float,
               concurrency: int) -> dict[str, Any]:
    total = int(rate * seconds)
    targets = [target(c) for c in work[: min(len(work), total + 200)]]
    lat: list[int] = []
    answers: Counter[str] = Counter()
    late = 0
    conns = [await Connection.open(port) for _ in range(concurrency)]
    for i, t in enumerate(targets[:200]):  # warm up the connections and the server
        await conns[i % concurrency].get(t)
    start = time.perf_counter() + 0.1
    next_i = 0

    async def worker(conn: Connection) -> None:
        nonlocal next_i, late
        while next_i < total:
            i = next_i
            next_i += 1
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.01:
                late += 1
            t = time.perf_counter_ns()
            status, body = await conn.get(targets[200 + i % (len(targets) - 200)])
            lat.append(time.perf_counter_ns() - t)
            allow = b'"allow":true' in body
            answers[f"{status}:{'allow' if allow else 'refuse'}" if status == 200 else str(status)] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return {**percentiles(lat), "requests": len(lat), "achieved_rps": len(lat) / elapsed,
            "sent_late_over_10ms": late, "answers": dict(answers)}


def http(args: argparse.Namespace, work: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", "--port", str(port), "--customers", str(args.customers),
            "--suspended", str(args.suspended), "--seed", str(args.seed)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline() if server.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"server did not start: {line}{server.stderr.read() if server.stderr else ''}")
        return asyncio.run(load(port, work, args.http_rate, args.http_seconds, args.http_concurrency))
    finally:
        server.terminate()
        server.wait(10)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--suspended", type=float, default=0.03, help="share of customers with suspensions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http-rate", type=float, default=1000.0, help="offered requests/s")
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--http-concurrency", type=int, default=8, help="most requests in flight")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return 0

    t = time.perf_counter()
    rules, states, info = build(args.customers, args.suspended, args.seed)
    work = calls(args.calls, info.pop("facts"), args.seed)
    print(f"data: {args.customers:,} customers, {info['suspended_customers']:,} with {info['suspensions']:,} "
          f"suspensions {info['by_kind']}; {len(work):,} calls ({time.perf_counter() - t:.1f} s); "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    result: dict[str, Any] = {"data": info, "in_process": in_process(rules, states, work)}
    ip = result["in_process"]
    print(f"(a) in process: index rebuild {ip['rebuild_ms']:.1f} ms over {len(states):,} states", file=sys.stderr)
    for label in ("cold", "warm"):
        r = ip[label]
        print(f"    {label}: p50 {r['p50_us']:.1f} µs  p90 {r['p90_us']:.1f} µs  p99 {r['p99_us']:.1f} µs  "
              f"p99.9 {r['p999_us']:.1f} µs  max {r['max_us']:.0f} µs  ({r['calls_per_s']:,.0f} calls/s)  "
              f"{r['answers']}", file=sys.stderr)
        h = r["customers_with_suspensions"]
        print(f"      of which {h['calls']:,} calls of customers with suspensions (numbers normalised): "
              f"p50 {h['p50_us']:.1f} µs  p99 {h['p99_us']:.1f} µs  p99.9 {h['p999_us']:.1f} µs  "
              f"max {h['max_us']:.0f} µs", file=sys.stderr)
    if not args.skip_http:
        result["http"] = h = http(args, work)
        print(f"(b) HTTP on 127.0.0.1, {args.http_rate:g} req/s offered for {args.http_seconds:g} s, "
              f"{args.http_concurrency} in flight at most: p50 {h['p50_us'] / 1000:.2f} ms  "
              f"p90 {h['p90_us'] / 1000:.2f} ms  p99 {h['p99_us'] / 1000:.2f} ms  max {h['max_us'] / 1000:.1f} ms  "
              f"({h['achieved_rps']:,.0f} req/s achieved, {h['sent_late_over_10ms']} sent >10 ms late)  "
              f"{h['answers']}; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
