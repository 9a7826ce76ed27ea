"""Detection benchmark: how many varied, labelled episodes the default rules catch, and how fast.

Not a test: run it by hand (see bench/README.md, "Detection")::

    python bench/detection.py                      # 20 seeds, 40 customers, 48 h, 2 processes
    python bench/detection.py --seeds 5 --jobs 1   # a quick look
    python bench/detection.py --json > det.json    # machine output
    python bench/detection.py --misses             # also list every missed episode and its events

For each seed it simulates, with ``tollguard.simulate.run_scenario("all", variety=True,
traps=True)``, ``--hours`` of traffic of ``--customers`` customers drawn from the wide profile
ranges, one episode of every kind with its parameters drawn from
``tollguard.simulate.variety.EPISODE_RANGES`` (pace, duration, destinations, call lengths, answer
ratio, time of day, customer), and one honest trap of each kind
(``tollguard.simulate.traps``) on other customers. The run starts on a Friday, so its second
day is a Saturday. It replays the CDRs in-process (``streams.replay.replay_files``, jsonl)
with ``rules/default.yaml`` plus the simulated customers' section (countries, DIDs, the call
centre's autodialer allowlist) from ``tollguard.simulate.customers_rules``, and matches events
to labels:

* an event *covers* an episode call when its scope contains it (``account``: every call of the
  customer; ``cli`` / ``did``: calls on that number; ``destination_prefix``: outbound calls to
  numbers under the prefix; ``outbound_international``: outbound calls abroad);
* an episode is **detected at the required level** (its label's ``required_level``: a
  suspension for the fraud kinds, ``capacity_increase``, ``compliance_notice``, an alert or
  stronger for the volume anomaly) once the events of that type (or stronger) for its customer,
  from its first call on, cover at least ``--coverage`` (default 0.5) of its calls;
  **detected at any level** the same with an alert or a suspension (for the fraud kinds; a
  ``capacity_increase`` on a pumped DID does not count); the time to detect is the
  ``occurred_at`` of the event that reached the coverage minus the episode's first call;
* every event on a customer without an episode is a false event: suspensions and alerts on
  benign customers are counted per customer and detector, honest traps per trap kind.

The matching is `tollguard.simulate.matching` (`tollguard backtest --labels` uses it too).

The anomaly model sees the volume anomaly only with ``--model FILE``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RULES = ROOT / "rules" / "default.yaml"
START = datetime(2025, 3, 14, tzinfo=UTC)  # a Friday: the second day of a 48-hour run is a Saturday


# --------------------------------------------------------------------------- one seed


def _rules(profiles: list[Any], rules_path: Path, workdir: Path) -> Any:
    """The rules file plus the simulated customers' section, loaded as ``tollguard replay --rules`` would."""
    import yaml

    from engine.registry import load_rules
    from tollguard.simulate import customers_rules

    base = yaml.safe_load(rules_path.read_text(encoding="utf-8")) or {}
    customers = dict(base.get("customers") or {})
    customers.update(customers_rules(profiles)["customers"])
    base["customers"] = customers
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return load_rules(path)


def run_seed(seed: int, customers: int, hours: float, rules_path: str, model_path: str | None,
             coverage: float) -> dict[str, Any]:
    """Simulate, replay and match one seed; a JSON-ready result."""
    from streams.replay import replay_files
    from tollguard.simulate import matching, run_scenario, write

    t_begin = time.perf_counter()
    minutes = int(hours * 60)
    sim = run_scenario("all", start=START, minutes=minutes, customers=customers, seed=seed, variety=True,
                       traps=True)
    profiles = {p.customer_id: p for p in sim.profiles}
    watched = {lab.customer_id for lab in sim.labels}
    calls_of: dict[str, tuple[str, str, str, str | None]] = {}

    def keep(records: Any) -> Any:
        for r in records:
            if r.customer_id in watched:
                calls_of[r.call_id] = (r.direction.value, r.caller, r.callee, r.did)
            yield r

    model = None
    if model_path:
        from models.model import AnomalyModel

        model = AnomalyModel.load(model_path)
    with tempfile.TemporaryDirectory(prefix="tollguard-detection-") as tmp:
        work = Path(tmp)
        data = work / "cdrs.jsonl"
        n_cdrs = write(keep(sim.records()), "jsonl", data)
        rules = _rules(list(profiles.values()), Path(rules_path), work)
        t_sim = time.perf_counter()
        out, rej = io.StringIO(), io.StringIO()
        summary = replay_files([data], rules, out, rej, fmt="jsonl", model=model)
    t_replay = time.perf_counter()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    by_customer = matching.by_customer(events)

    def brief(ev: dict[str, Any]) -> dict[str, Any]:
        return {"type": ev["type"], "detector": ev["detector"], "scope": ev["scope"],
                "occurred_at": ev["occurred_at"], "reason": ev["reason"]}

    episodes = []
    used_events: set[int] = set()
    for lab in sim.labels:
        calls = [calls_of[c] for c in lab.call_ids if c in calls_of]
        home_cc = matching.home_code(profiles[lab.customer_id].country)
        got = matching.match_episode(lab.to_json_dict(), by_customer.get(lab.customer_id, []), calls, home_cc,
                                     coverage)
        used_events.update(id(ev) for ev in got.touching)
        episodes.append({
            "kind": lab.kind,
            "customer_id": lab.customer_id,
            "required_level": got.required_level,
            "scope": lab.scope,
            "first_call": lab.start.isoformat().replace("+00:00", "Z"),
            "last_end": lab.end.isoformat().replace("+00:00", "Z"),
            "n_calls": lab.n_calls,
            "params": lab.params,
            "detected_required": got.detected_required,
            "ttd_required_s": got.ttd_required_s,
            "coverage_required": got.coverage_required,
            "detected_any": got.detected_any,
            "ttd_any_s": got.ttd_any_s,
            "coverage_any": got.coverage_any,
            "detectors": got.detectors,
            "events": [brief(dict(ev)) for ev in got.touching],
            "customer_calls_per_hour_peak": profiles[lab.customer_id].calls_per_hour_peak,
        })
    # events on customers with an episode that do not touch it (other scopes, before it)
    off_target = [brief(ev) for cid in watched for ev in by_customer.get(cid, []) if id(ev) not in used_events]
    trap_of = {lab.customer_id: lab.kind for lab in sim.trap_labels}
    benign = []
    for cid, evs in by_customer.items():
        if cid in watched:
            continue
        for ev in evs:
            benign.append({**brief(ev), "customer_id": cid, "trap": trap_of.get(cid)})
    return {
        "seed": seed,
        "cdrs": n_cdrs,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
        "events": len(events),
        "seconds_simulate": round(t_sim - t_begin, 2),
        "seconds_replay": round(t_replay - t_sim, 2),
        "episodes": episodes,
        "off_target_events": off_target,
        "benign_events": benign,
        "benign_customers": len(profiles) - len(watched),
        "traps": [{"kind": lab.kind, "customer_id": lab.customer_id, "params": lab.params,
                   "n_calls": lab.n_calls} for lab in sim.trap_labels],
    }


# --------------------------------------------------------------------------- summary


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind: shares detected and times to detect; benign and trap events."""
    from tollguard.simulate import EPISODE_KINDS
    from tollguard.simulate.traps import TRAP_KINDS

    kinds: dict[str, Any] = {}
    for kind in EPISODE_KINDS:
        eps = [e for r in results for e in r["episodes"] if e["kind"] == kind]
        if not eps:
            continue
        ttd = [e["ttd_required_s"] for e in eps if e["detected_required"]]
        ttd_any = [e["ttd_any_s"] for e in eps if e["detected_any"]]
        kinds[kind] = {
            "episodes": len(eps),
            "required_level": eps[0]["required_level"],
            "detected_required": sum(e["detected_required"] for e in eps),
            "share_required": sum(e["detected_required"] for e in eps) / len(eps),
            "detected_any": sum(e["detected_any"] for e in eps),
            "share_any": sum(e["detected_any"] for e in eps) / len(eps),
            "ttd_median_s": statistics.median(ttd) if ttd else None,
            "ttd_p90_s": _pct(ttd, 0.9),
            "ttd_any_median_s": statistics.median(ttd_any) if ttd_any else None,
            "detectors": dict(Counter(d for e in eps for d in e["detectors"])),
        }
    benign = [dict(ev, seed=r["seed"]) for r in results for ev in r["benign_events"]]
    plain = [ev for ev in benign if ev["trap"] is None]
    suspended = {(ev["seed"], ev["customer_id"]) for ev in plain if ev["type"] == "suspension"}
    traps: dict[str, Any] = {}
    for kind in TRAP_KINDS:
        evs = [ev for ev in benign if ev["trap"] == kind]
        n = sum(1 for r in results for t in r["traps"] if t["kind"] == kind)
        traps[kind] = {
            "traps": n,
            "with_events": len({ev["seed"] for ev in evs}),
            "suspended": len({ev["seed"] for ev in evs if ev["type"] == "suspension"}),
            "events_by_type_detector": dict(Counter(f"{ev['type']}/{ev['detector']}" for ev in evs)),
        }
    return {
        "seeds": [r["seed"] for r in results],
        "per_kind": kinds,
        "benign": {
            "customers": sum(r["benign_customers"] - len(r["traps"]) for r in results),
            "customers_suspended": len(suspended),
            "suspended_by_detector": dict(Counter(ev["detector"] for ev in plain if ev["type"] == "suspension")),
            "alerts": sum(ev["type"] == "alert" for ev in plain),
            "customers_alerted": len({(ev["seed"], ev["customer_id"]) for ev in plain if ev["type"] == "alert"}),
            "alerts_by_detector": dict(Counter(ev["detector"] for ev in plain if ev["type"] == "alert")),
            "other_events": dict(Counter(f"{ev['type']}/{ev['detector']}" for ev in plain
                                         if ev["type"] not in ("alert", "suspension"))),
        },
        "traps": traps,
        "off_target_events_on_episode_customers": dict(Counter(
            f"{ev['type']}/{ev['detector']}" for r in results for ev in r["off_target_events"])),
        "cdrs_per_seed": statistics.mean(r["cdrs"] for r in results),
        "rejected": sum(r["rejected"] for r in results),
    }


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(summary: dict[str, Any], args: argparse.Namespace, wall_s: float) -> str:
    lines = [
        f"seeds {len(summary['seeds'])} ({summary['seeds'][0]}..{summary['seeds'][-1]}), {args.customers} customers, "
        f"{args.hours:g} h from {START:%a %Y-%m-%d} 00:00 UTC, ~{summary['cdrs_per_seed']:,.0f} CDRs a seed, "
        f"coverage >= {args.coverage:g}, rules {Path(args.rules).name}"
        + (f", model {args.model}" if args.model else ", no model") + f"; {wall_s:.0f} s wall",
        "",
        "| episode kind | required | detected at required level | detected at any level | median TTD | p90 TTD "
        "| median TTD (any) | detectors that touched it |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, row in summary["per_kind"].items():
        dets = ", ".join(f"{d} {n}" for d, n in sorted(row["detectors"].items(), key=lambda kv: -kv[1])) or "-"
        lines.append(
            f"| {kind} | {row['required_level']} | {row['share_required']:.2f} ({row['detected_required']}/"
            f"{row['episodes']}) | {row['share_any']:.2f} ({row['detected_any']}/{row['episodes']}) | "
            f"{_fmt_s(row['ttd_median_s'])} | {_fmt_s(row['ttd_p90_s'])} | {_fmt_s(row['ttd_any_median_s'])} "
            f"| {dets} |"
        )
    b = summary["benign"]
    lines += [
        "",
        f"Benign customers (no episode, no trap): {b['customers']} customer-runs; suspended "
        f"{b['customers_suspended']} ({', '.join(f'{d} {n}' for d, n in b['suspended_by_detector'].items()) or '-'}); "
        f"alerts {b['alerts']} on {b['customers_alerted']} customer-runs "
        f"({', '.join(f'{d} {n}' for d, n in b['alerts_by_detector'].items()) or '-'}); other events: "
        f"{', '.join(f'{k} {n}' for k, n in b['other_events'].items()) or 'none'}.",
        "",
        "| honest trap | runs | runs with events | runs suspended | events (type/detector) |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, row in summary["traps"].items():
        evs = ", ".join(f"{k} {n}" for k, n in sorted(row["events_by_type_detector"].items())) or "-"
        lines.append(f"| {kind} | {row['traps']} | {row['with_events']} | {row['suspended']} | {evs} |")
    off = summary["off_target_events_on_episode_customers"]
    lines += ["", "Events on episode customers that touch none of the episode's calls: "
              + (", ".join(f"{k} {n}" for k, n in sorted(off.items())) or "none") + "."]
    if summary["rejected"]:
        lines.append(f"Rejected CDR lines: {summary['rejected']}.")
    return "\n".join(lines)


def render_misses(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        for e in r["episodes"]:
            if e["detected_required"]:
                continue
            params = {k: v for k, v in e["params"].items() if k not in ("start_offset_min",)}
            out.append(f"seed {r['seed']} {e['kind']} {e['customer_id']} (peak {e['customer_calls_per_hour_peak']}/h) "
                       f"first call {e['first_call']} calls {e['n_calls']} coverage(required) "
                       f"{e['coverage_required']} any-level {'yes' if e['detected_any'] else 'no'}\n"
                       f"    params {json.dumps(params, sort_keys=True)}")
            for ev in e["events"]:
                out.append(f"    {ev['occurred_at']} {ev['type']} {ev['detector']} {ev['scope']['kind']}="
                           f"{ev['scope']['value']}: {ev['reason'][:300]}")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    parser.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--customers", type=int, default=40, help="customers a seed (default 40)")
    parser.add_argument("--hours", type=float, default=48, help="simulated hours a seed (default 48)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--rules", default=str(RULES), help="rules file (default rules/default.yaml)")
    parser.add_argument("--model", default=None, help="anomaly model file (tollguard train); default none")
    parser.add_argument("--coverage", type=float, default=0.5,
                        help="share of an episode's calls the events' scopes must cover (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print the summary and every seed's result as JSON")
    parser.add_argument("--misses", action="store_true", help="also list each missed episode and its events")
    args = parser.parse_args(argv)
    if args.customers < 20:
        parser.error("--customers must be at least 20 (9 episodes and 8 traps on distinct customers)")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    began = time.perf_counter()
    job = (args.customers, args.hours, args.rules, args.model, args.coverage)
    if args.jobs <= 1:
        results = [run_seed(s, *job) for s in seeds]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_seed, s, *job) for s in seeds]
            results = [f.result() for f in futures]
    wall = time.perf_counter() - began
    summary = summarise(results)
    if args.json:
        json.dump({"args": vars(args), "wall_s": round(wall, 1), "summary": summary, "results": results},
                  sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return 0
    print(render(summary, args, wall))
    if args.misses:
        print()
        print(render_misses(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
