"""``tollguard backtest``: what a rules change would have done on history (DESIGN §5, issue 13).

The input is read once (the adapters, with the new rules' ``ingest`` settings) and every line
is given to two replays (:class:`streams.replay.Replay`, the runner ``tollguard replay`` and the
worker run), one under the baseline rules and one under the new rules; a verdicts file is fed
to both by time. The two event lists are then compared:

* **added** / **removed**: events only one side emitted (ids are deterministic: type, detector,
  customer, scope and episode, so the same decision has the same id on both sides);
* **changed**: the same id with other content (event time, reason, evidence, ...), or, where an
  episode's first evidence moved (so its id did), the events of one type, detector, customer and
  scope left unpaired on both sides, paired in event-time order (``event_id`` is then a change);
* **newly suspended**: customers suspended under the new rules and never under the baseline
  (and the other way round);
* **time-to-detect shifts**: per (type, detector, customer, scope), the first event's
  ``occurred_at`` on each side, where both have one and they differ;
* with the simulator's labels (``tollguard simulate --labels``): recall per episode kind at
  the required level and at any level, median time to detect, and false suspensions
  (suspensions of customers without an episode, honest traps included) under each rules file,
  matched as the detection benchmark matches them (:mod:`tollguard.simulate.matching`).

:func:`backtest` returns the whole report as a JSON-ready dict (``tollguard backtest --json``).
"""

from __future__ import annotations

import io
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.replay import Replay
from tollguard.adapters import read_file
from tollguard.events import Event, EventType
from tollguard.rules import Rules, owner_lookup
from tollguard.simulate import matching

#: The two sides of a backtest, in report order.
SIDES = ("baseline", "new")
#: Event fields that never count as a change (wall clock, and the rules version that differs by design).
IGNORED_FIELDS = frozenset({"emitted_at", "rules_version"})


def brief(event: Mapping[str, Any]) -> dict[str, Any]:
    """The lines of an event an analyst reads in a diff: what, who, when, why, and the money.

    ``estimated_cost`` and ``currency`` come from the evidence where the rate table priced it.
    """
    evidence = event.get("evidence") or {}
    out = {
        "event_id": event["event_id"],
        "type": event["type"],
        "detector": event["detector"],
        "customer_id": event["customer_id"],
        "scope": f"{event['scope']['kind']}:{event['scope']['value']}",
        "occurred_at": event["occurred_at"],
        "reason": event["reason"],
    }
    if "estimated_cost" in evidence:
        out["estimated_cost"] = evidence["estimated_cost"]
        out["currency"] = evidence.get("currency")
    if event.get("report_only"):
        out["report_only"] = True
    return out


def _changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: [old, new]}`` of the fields that differ; for ``evidence``, ``{key: [old, new]}``."""
    out: dict[str, Any] = {}
    for name in sorted((set(old) | set(new)) - IGNORED_FIELDS):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if name == "evidence" and isinstance(a, dict) and isinstance(b, dict):
            out[name] = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
        else:
            out[name] = [a, b]
    return out


def _suspended(events: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(e["customer_id"]) for e in events if e["type"] == EventType.SUSPENSION}


def _key(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(type, detector, customer, ``kind:value`` scope) of an event."""
    return (str(event["type"]), str(event["detector"]), str(event["customer_id"]),
            f"{event['scope']['kind']}:{event['scope']['value']}")


def _by_key(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for ev in sorted(events, key=matching.event_time_s):
        out.setdefault(_key(ev), []).append(ev)
    return out


def _first_times(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], tuple[float, str]]:
    """(type, detector, customer, scope) -> (epoch s, ISO) of the first event of that key."""
    first: dict[tuple[str, str, str, str], tuple[float, str]] = {}
    for ev in events:
        key = _key(ev)
        t = matching.event_time_s(ev)
        if key not in first or t < first[key][0]:
            first[key] = (t, str(ev["occurred_at"]))
    return first


def compare(baseline: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The difference between two runs' events (JSON form), as the module docstring describes it.

    Returns
    -------
    dict
        ``added``, ``removed`` (lists of :func:`brief`), ``changed`` (brief of the new event plus
        ``fields``), ``by_group`` (counts per type, detector and customer), ``newly_suspended``,
        ``no_longer_suspended`` (customer ids), ``ttd_shifts`` (``shift_s`` = new minus baseline,
        seconds; negative: detected earlier).
    """
    old_by_id = {str(e["event_id"]): e for e in baseline}
    new_by_id = {str(e["event_id"]): e for e in new}
    pairs = [(old_by_id[str(e["event_id"])], e) for e in new if str(e["event_id"]) in old_by_id]
    # An episode whose first evidence moved gets another id: the events of one (type, detector,
    # customer, scope) left unpaired on both sides are paired in event-time order.
    alone_old = _by_key(e for e in baseline if str(e["event_id"]) not in new_by_id)
    alone_new = _by_key(e for e in new if str(e["event_id"]) not in old_by_id)
    added, removed = [], []
    for key in sorted(set(alone_old) | set(alone_new)):
        olds, news = alone_old.get(key, []), alone_new.get(key, [])
        pairs += list(zip(olds, news, strict=False))
        removed += [brief(e) for e in olds[len(news):]]
        added += [brief(e) for e in news[len(olds):]]
    added.sort(key=lambda row: (row["occurred_at"], row["event_id"]))
    removed.sort(key=lambda row: (row["occurred_at"], row["event_id"]))
    changed = []
    for old, e in sorted(pairs, key=lambda pair: (str(pair[1]["occurred_at"]), str(pair[1]["event_id"]))):
        fields = _changed_fields(old, e)
        if fields:
            changed.append({**brief(e), "fields": fields})
    groups: Counter[tuple[str, str, str, str]] = Counter()
    for what, rows in (("added", added), ("removed", removed), ("changed", changed)):
        for row in rows:
            groups[(row["type"], row["detector"], row["customer_id"], what)] += 1
    by_group: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (etype, det, cust, what), n in sorted(groups.items()):
        row = by_group.setdefault((etype, det, cust), {"type": etype, "detector": det, "customer_id": cust,
                                                       "added": 0, "removed": 0, "changed": 0})
        row[what] = n
    first_old, first_new = _first_times(baseline), _first_times(new)
    shifts = []
    for key in sorted(set(first_old) & set(first_new)):
        (t_old, iso_old), (t_new, iso_new) = first_old[key], first_new[key]
        if t_old != t_new:
            etype, det, cust, scope = key
            shifts.append({"type": etype, "detector": det, "customer_id": cust, "scope": scope,
                           "baseline": iso_old, "new": iso_new, "shift_s": round(t_new - t_old, 3)})
    susp_old, susp_new = _suspended(baseline), _suspended(new)
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "by_group": list(by_group.values()),
        "newly_suspended": sorted(susp_new - susp_old),
        "no_longer_suspended": sorted(susp_old - susp_new),
        "ttd_shifts": shifts,
    }


def is_episode(label: Mapping[str, Any]) -> bool:
    """An injected episode (an honest trap's label has ``required_level`` null: it must get nothing)."""
    return not ("required_level" in label and label["required_level"] is None)


def score_labels(
    events: Sequence[Mapping[str, Any]],
    labels: Sequence[Mapping[str, Any]],
    calls_of: Mapping[str, matching.Call],
    country_of: Any,
    coverage: float = 0.5,
) -> dict[str, Any]:
    """Recall per episode kind and false suspensions of one run (see :mod:`tollguard.simulate.matching`).

    Parameters
    ----------
    events : event dicts of the run
    labels : the labels file's objects (episodes and honest traps)
    calls_of : call_id -> Call, for the labelled calls that were read
    country_of : callable customer_id -> ISO region (the rules' ``country_of``)
    coverage : share of an episode's calls the events must cover

    Returns
    -------
    dict
        ``per_kind`` {kind: {episodes, required_level, detected, recall, detected_any, recall_any,
        ttd_median_s, ttd_any_median_s}}, ``episodes`` (one row per labelled episode, in file order),
        ``false_suspensions`` {events, customers, traps}.
    """
    grouped = matching.by_customer(events)
    rows = []
    per_kind: dict[str, dict[str, Any]] = {}
    episodes = [lab for lab in labels if is_episode(lab)]
    for lab in episodes:
        cid = str(lab["customer_id"])
        calls = [calls_of[c] for c in lab.get("call_ids", []) if c in calls_of]
        got = matching.match_episode(lab, grouped.get(cid, []), calls, matching.home_code(country_of(cid)), coverage)
        rows.append({"kind": lab["kind"], "customer_id": cid, "required_level": got.required_level,
                     "detected": got.detected_required, "ttd_s": got.ttd_required_s,
                     "coverage": got.coverage_required, "detected_any": got.detected_any,
                     "ttd_any_s": got.ttd_any_s, "detectors": got.detectors})
        kind = per_kind.setdefault(str(lab["kind"]), {"episodes": 0, "required_level": got.required_level,
                                                      "detected": 0, "detected_any": 0, "_ttd": [],
                                                      "_ttd_any": []})
        kind["episodes"] += 1
        kind["detected"] += got.detected_required
        kind["detected_any"] += got.detected_any
        if got.ttd_required_s is not None:
            kind["_ttd"].append(got.ttd_required_s)
        if got.ttd_any_s is not None:
            kind["_ttd_any"].append(got.ttd_any_s)
    for kind in per_kind.values():
        ttd, ttd_any = kind.pop("_ttd"), kind.pop("_ttd_any")
        kind["recall"] = round(kind["detected"] / kind["episodes"], 4)
        kind["recall_any"] = round(kind["detected_any"] / kind["episodes"], 4)
        kind["ttd_median_s"] = round(statistics.median(ttd), 3) if ttd else None
        kind["ttd_any_median_s"] = round(statistics.median(ttd_any), 3) if ttd_any else None
    watched = {str(lab["customer_id"]) for lab in episodes}
    trap_of = {str(lab["customer_id"]): str(lab["kind"]) for lab in labels if not is_episode(lab)}
    false = [e for e in events if e["type"] == EventType.SUSPENSION and str(e["customer_id"]) not in watched]
    return {
        "per_kind": per_kind,
        "episodes": rows,
        "false_suspensions": {
            "events": len(false),
            "customers": sorted({str(e["customer_id"]) for e in false}),
            "traps": dict(sorted(Counter(trap_of[str(e["customer_id"])] for e in false
                                         if str(e["customer_id"]) in trap_of).items())),
        },
    }


def backtest(
    paths: Sequence[str | Path],
    new_rules: Rules,
    baseline_rules: Rules,
    fmt: str = "auto",
    labels: Sequence[Mapping[str, Any]] | None = None,
    verifications: str | Path | None = None,
    model: Any = None,
    coverage: float = 0.5,
) -> dict[str, Any]:
    """Replay ``paths`` once under both rules files and compare (see the module docstring).

    Parameters
    ----------
    paths : CDR files, read in this order (arrival order, as ``tollguard replay``)
    new_rules, baseline_rules : validated rules
    fmt : input format (``auto`` sniffs)
    labels : label objects (``streams.train.read_labels``), optional
    verifications : a verdicts file given to both runs, optional
    model : trained anomaly model for both engines, optional
    coverage : see :func:`score_labels`

    Returns
    -------
    dict
        JSON-ready: ``rules`` (both versions), ``input`` (files, lines, and per side CDRs accepted
        and rejected, verdicts applied and refused), ``events`` (count per side and type), the
        :func:`compare` keys, ``labels`` (per side :func:`score_labels`, when labels are given) and
        ``notes``.

    Raises
    ------
    OSError
        A file cannot be read.
    """
    collected: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    runs: dict[str, Replay] = {}
    for side, rules in zip(SIDES, (baseline_rules, new_rules), strict=True):
        sink = collected[side]
        runs[side] = Replay(rules, io.StringIO(), io.StringIO(), model=model,
                            on_event=lambda event, sink=sink: sink.append(_json(event)))  # type: ignore[misc]
        if verifications is not None:
            runs[side].load_verdicts(verifications)
    wanted = {str(c) for lab in labels or () for c in lab.get("call_ids", [])}
    calls_of: dict[str, matching.Call] = {}
    notes = []
    if baseline_rules.ingest != new_rules.ingest or any(
        baseline_rules.country_of(c) != new_rules.country_of(c)
        for c in set(baseline_rules.customers) | set(new_rules.customers)
    ):
        notes.append("the two rules files read CDRs differently (ingest settings or customers' countries): "
                     "the input was read once, with the new rules' settings")
    for path in paths:
        for run in runs.values():
            run.summary.files.append(str(path))
        for parsed in read_file(path, fmt, settings=new_rules.ingest, country_of=new_rules.country_of,
                                owner_of=owner_lookup(new_rules)):
            record = parsed.record
            if record is not None and record.call_id in wanted:
                calls_of[record.call_id] = (record.direction.value, record.caller, record.callee, record.did)
            for run in runs.values():
                run.take(parsed)
    summaries = {side: run.finish() for side, run in runs.items()}
    report: dict[str, Any] = {
        "rules": {"baseline": baseline_rules.version, "new": new_rules.version},
        "input": {
            "files": [str(p) for p in paths],
            "lines_read": summaries["new"].lines_read,
            **{f"accepted_{side}": summaries[side].accepted for side in SIDES},
            **{f"rejected_{side}": summaries[side].rejected for side in SIDES},
            **{f"verdicts_applied_{side}": summaries[side].verdicts_applied for side in SIDES},
            **{f"verdicts_refused_{side}": summaries[side].verdicts_refused for side in SIDES},
        },
        "events": {side: {"total": len(collected[side]),
                          **dict(sorted(Counter(str(e["type"]) for e in collected[side]).items()))}
                   for side in SIDES},
        **compare(collected["baseline"], collected["new"]),
        "notes": notes,
    }
    if labels is not None:
        report["labels"] = {side: score_labels(collected[side], labels, calls_of, new_rules.country_of, coverage)
                            for side in SIDES}
        report["labels"]["coverage"] = coverage
    return report


def _json(event: Event) -> dict[str, Any]:
    return event.to_json_dict()


def _money(row: Mapping[str, Any]) -> str:
    if "estimated_cost" not in row:
        return ""
    return f"  ({row.get('currency') or ''} {row['estimated_cost']:,.2f})".replace("( ", "(")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 3600:
        return f"{sign}{seconds / 60:.1f} min"
    return f"{sign}{seconds / 3600:.1f} h"


def render(report: Mapping[str, Any], console: Any) -> None:
    """Print a :func:`backtest` report for an analyst on a ``rich`` console (times UTC)."""
    from rich.table import Table

    rules, counts = report["rules"], report["events"]
    read = report["input"]
    console.print(f"[bold]backtest[/bold] baseline {rules['baseline']} → new {rules['new']}; "
                  f"{read['lines_read']:,} CDR lines from {len(read['files'])} file(s), rejected "
                  f"{read['rejected_baseline']:,} / {read['rejected_new']:,}", highlight=False)
    if any(read[f"verdicts_{what}_{side}"] for what in ("applied", "refused") for side in SIDES):
        console.print("verdicts applied / refused: " + "; ".join(
            f"{side} {read[f'verdicts_applied_{side}']} / {read[f'verdicts_refused_{side}']}" for side in SIDES),
            highlight=False)
    console.print("events: " + "; ".join(
        f"{side} {counts[side]['total']} (" + ", ".join(f"{k} {v}" for k, v in counts[side].items() if k != "total")
        + ")" for side in SIDES), highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if report["by_group"]:
        table = Table(title="differences by type, detector and customer")
        for col in ("type", "detector", "customer", "added", "removed", "changed"):
            table.add_column(col, justify="right" if col in ("added", "removed", "changed") else "left")
        for row in report["by_group"]:
            table.add_row(row["type"], row["detector"], row["customer_id"], str(row["added"]),
                          str(row["removed"]), str(row["changed"]))
        console.print(table)
    else:
        console.print("no difference in events")
    for title, key, style in (("added", "added", "green"), ("removed", "removed", "red"),
                              ("changed", "changed", "yellow")):
        for row in report[key]:
            console.print(f"[{style}]{title}[/{style}] {row['occurred_at']} {row['type']} {row['detector']} "
                          f"{row['customer_id']} {row['scope']}{_money(row)}", highlight=False)
            console.print(f"    {row['reason']}", highlight=False)
            if key == "changed":
                console.print(f"    changed: {', '.join(row['fields'])}", highlight=False)
    for title, key in (("newly suspended customers", "newly_suspended"),
                       ("customers no longer suspended", "no_longer_suspended")):
        console.print(f"{title}: {', '.join(report[key]) or 'none'}", highlight=False)
    for row in report["ttd_shifts"]:
        console.print(f"time to detect {row['type']} {row['detector']} {row['customer_id']} {row['scope']}: "
                      f"{row['baseline']} → {row['new']} ({_duration(row['shift_s'])})", highlight=False)
    labels = report.get("labels")
    if labels:
        table = Table(title=f"episodes (labels; coverage >= {labels['coverage']:g})")
        for col in ("episode kind", "required", "baseline detected", "new detected", "baseline TTD", "new TTD"):
            table.add_column(col)
        base, new = labels["baseline"]["per_kind"], labels["new"]["per_kind"]
        for kind in base:
            b, n = base[kind], new[kind]
            table.add_row(kind, b["required_level"], f"{b['detected']}/{b['episodes']} ({b['recall']:.2f})",
                          f"{n['detected']}/{n['episodes']} ({n['recall']:.2f})", _duration(b["ttd_median_s"]),
                          _duration(n["ttd_median_s"]))
        console.print(table)
        for side in SIDES:
            false = labels[side]["false_suspensions"]
            console.print(f"false suspensions under {side}: {false['events']} event(s) on "
                          f"{', '.join(false['customers']) or 'no customer'}", highlight=False)
