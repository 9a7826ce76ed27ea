"""Arbitrage check (c), high-cost international traffic far above the customer's history (outbound IRSF).

International revenue-share fraud (IRSF) pumps minutes, over several parallel lines, to
ranges that pay the fraudster per minute: destinations the customer never called, and
often outside any list (IPRN payouts were offered for 201 country codes, TransNexus IPRN
study 2015). So the sign is a **sudden rise of international traffic to destinations new
to the customer, on parallel lines**, weighed by money where the rules' rate table prices
it (:class:`tollguard.rates.RateTable`) and by minutes where it does not.

Every answered outbound call to an international number of ``high_cost_number_types``
(emergency, toll-free and allowlisted destinations never reach this check; premium number
types and the rules' ``high_risk_prefixes`` are ``premium_destination``'s) is put under a
*destination*: the listed code of ``high_cost_country_codes`` it falls under, else its
country calling code and region (``"+216 TN"``; ``"+235"`` for a number libphonenumber
finds invalid). Over a sliding window of ``high_cost_window_s``:

* a destination is **new** while the customer's first answered call to it is inside the
  window (so the window only ever judges destinations against what the customer called
  before it), and stays new for good once it was part of an alert or suspension (until a
  verdict clears the suspicion: :func:`reset` learns it);
* a **listed** destination the customer already calls counts above its own baseline: the
  minutes beyond ``high_cost_history_factor`` x its EWMA of minutes per closed UTC hour
  (scaled to the window) count, valued at that share of its cost;
* a destination that is neither new nor listed never counts (a firm's usual countries);
* during the customer's first ``high_cost_cold_start_h`` hours (no baseline yet: every
  destination is new, the first business morning too) unlisted destinations count only
  when the calls they add reach ``high_cost_cold_start_lines`` parallel lines.

With call events (DESIGN §3b), the calls still up are also judged at call setup
(:func:`setup_check`): ``high_cost_setup_lines`` calls up at once, ringing ones included, to
listed destinations new to the customer (or ``high_cost_setup_unlisted_lines`` to unlisted new
ones after the cold start; a mix by shares) suspend its outbound international calls within
seconds of the attack's first lines, before any minute is paid. CDRs alone never use it.

The counted traffic is the priced calls' cost ``C`` and the unpriced calls' minutes ``M``;
with at least ``high_cost_min_lines`` of its answered calls simultaneous,
``M / high_cost_min_minutes + C / high_cost_min_cost >= 1`` gives an alert and
``M / high_cost_critical_minutes + C / high_cost_critical_cost >= 1`` a suspension of the
customer's outbound international calls (scope ``outbound_international``, value: the
customer id). A call counts when its CDR arrives, at its end.

State: ``{"calls": [[t_s, minutes, call_id, dest, cost | None, talk_from_s, flag, talk_to_s], ...],
"new_min", "new_cost", "cold_min", "cold_cost", "known_min", "known_cost": running sums,
"ep": str | None, "first_end_s": {dest: end of its first answered call}, "held": [dest, ...],
"since_s": first CDR end seen | None, "hour": open UTC hour (epoch hours) | None,
"hour_min": {listed dest: minutes in the open hour}, "base": {listed dest: [EWMA min/h, hour]},
"hours_seen": closed hours}``. ``flag``: 1 new, 2 new and unlisted in the cold start, 0 known
and listed (known unlisted calls are not kept). The big values (``calls``, ``first_end_s``)
have keys of lengths no other key has: a worker splits a state into pieces by key hash.

Examples
--------
>>> from detectors.arbitrage.params import ArbitrageParams
>>> from tollguard.context import CustomerContext
>>> from tollguard.rates import RateTable
>>> from tollguard.testing import make_cdr
>>> from tollguard.numbers import classify
>>> hc, p, out = new_state(), ArbitrageParams(), []
>>> ctx = CustomerContext("c1", rates=RateTable())   # the example table: +239 at EUR 1.20 a minute
>>> for i in range(5):   # two lines to Sao Tome (+239), 10-minute calls back to back, 5 min apart
...     start = 300 * (i % 2) + 610 * (i // 2)
...     cdr = make_cdr(call_id=f"h{i}", direction="outbound", callee="+2399901234", start_s=start,
...                    answer_s=start + 10, end_s=start + 610)
...     close_hours(hc, cdr.end.timestamp(), p)
...     out += check(hc, cdr, destination(classify(cdr.callee, "IT"), p), cdr.end.timestamp(), ctx, p)
>>> # EUR 12 a call: the alert at EUR 36 (>= 30 on 2 lines), the suspension at EUR 60
>>> [(d.level, d.evidence["estimated_cost"], d.evidence["lines"]) for d in out]
[('warning', 36.0, 2), ('warning', 48.0, 2), ('critical', 60.0, 2)]
"""

from __future__ import annotations

from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, CustomerContext, Decision, iso, level_decision
from detectors.window import Window, entry_cap
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind
from tollguard.numbers import NON_GEOGRAPHIC_REGION, NumberInfo, classify, matches_prefix

# entry: [t_s, minutes, call_id, destination, cost or None, talk_from_s, flag, talk_to_s]
_T, _MIN, _ID, _DEST, _COST, _FROM, _FLAG, _TO = range(8)
#: Entry flags: a known listed destination (counts above its baseline), new, new and unlisted in the cold start.
KNOWN, NEW, COLD = 0, 1, 2


def _part(flag: int, priced: bool) -> Any:
    if priced:
        return lambda e, _s: e[_COST] if e[_FLAG] == flag and e[_COST] is not None else 0.0
    return lambda e, _s: e[_MIN] if e[_FLAG] == flag and e[_COST] is None else 0.0


_SUMS = ("new_min", "new_cost", "cold_min", "cold_cost", "known_min", "known_cost")

#: The window of the customer's counted international calls, with running sums per flag and unit.
CALLS = Window(
    "calls",
    sums={
        "new_min": _part(NEW, False), "new_cost": _part(NEW, True),
        "cold_min": _part(COLD, False), "cold_cost": _part(COLD, True),
        "known_min": lambda e, _s: e[_MIN] if e[_FLAG] == KNOWN else 0.0,
        "known_cost": lambda e, _s: (e[_COST] or 0.0) if e[_FLAG] == KNOWN else 0.0,
    },
    on_empty={**dict.fromkeys(_SUMS, 0.0), "ep": None},
)  # fmt: skip

#: Destinations remembered per customer at most (countries and codes: a few hundred exist).
MAX_DESTINATIONS = 2000


def new_state() -> dict[str, Any]:
    """An empty window and no history."""
    return {"calls": [], **dict.fromkeys(_SUMS, 0.0), "ep": None, "first_end_s": {}, "held": [], "since_s": None,
            "hour": None, "hour_min": {}, "base": {}, "hours_seen": 0}  # fmt: skip


def _upgrade(hc: dict[str, Any]) -> None:
    """A state written before destinations were tracked (minutes to listed codes only): start afresh."""
    if "first_end_s" not in hc:
        hours, hour = hc.get("hours", 0), hc.get("hour")
        hc.clear()
        hc.update(new_state(), hours_seen=hours, hour=hour)


def destination(info: NumberInfo, p: ArbitrageParams) -> str | None:
    """The destination an answered call to ``info`` counts under, or None when the check ignores it.

    The listed code of ``high_cost_country_codes`` it falls under, else ``"+<country code> <region>"``
    (``"+<country code>"`` without a region, e.g. an invalid number); None for a national
    number or a type outside ``high_cost_number_types``.

    >>> from tollguard.numbers import classify
    >>> p = ArbitrageParams()
    >>> destination(classify("+2399901234", "IT"), p), destination(classify("+21671234567", "IT"), p)
    ('+239', '+216 TN')
    >>> destination(classify("+390612345678", "IT"), p) is None
    True
    """
    if not info.international or info.number_type not in p.high_cost_number_types:
        return None
    listed = matches_prefix(info.e164, p.high_cost_country_codes)
    if listed is not None:
        return listed
    if info.country_code is None:
        return None
    if info.region and info.region != NON_GEOGRAPHIC_REGION:
        return f"+{info.country_code} {info.region}"
    return f"+{info.country_code}"


def close_hours(hc: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
    """Fold every UTC hour that ended by ``now_s`` into the listed destinations' baselines."""
    _upgrade(hc)
    if hc["since_s"] is None:
        hc["since_s"] = now_s
    hour = int(now_s // 3600)
    if hc["hour"] is None:
        hc["hour"] = hour
    elif hour > hc["hour"]:
        a, base = p.high_cost_baseline_alpha, hc["base"]
        for dest, minutes in hc["hour_min"].items():
            value = _baseline(hc, dest, hc["hour"], a)
            base[dest] = [(1 - a) * value + a * minutes, hc["hour"] + 1]
        hc["hours_seen"] += hour - hc["hour"]
        hc["hour"], hc["hour_min"] = hour, {}


def _baseline(hc: dict[str, Any], dest: str, hour: int, alpha: float) -> float:
    """A listed destination's EWMA of minutes per hour at the start of ``hour`` (silent hours decay it)."""
    value, since = hc["base"].get(dest, (0.0, hour))
    decay: float = (1.0 - alpha) ** max(0, hour - int(since))
    return float(value) * decay


def expire(hc: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
    """Drop the calls that left the window."""
    CALLS.expire(hc, now_s=now_s, window_s=p.high_cost_window_s)


def reset(hc: dict[str, Any]) -> None:
    """A cleared verdict: forget the window's evidence; the destinations held as new become known."""
    _upgrade(hc)
    for dest in hc["held"]:
        hc["first_end_s"][dest] = 0.0
    hc["calls"], hc["held"], hc["ep"] = [], [], None
    hc.update(dict.fromkeys(_SUMS, 0.0))
    hc.pop(CALLS.capped_key, None)


def check(
    hc: dict[str, Any], cdr: CallDetailRecord, dest: str, now_s: float, ctx: CustomerContext, p: ArbitrageParams
) -> list[Decision]:
    """Fold an answered international call to ``dest`` (:func:`destination`) into ``hc``; the decision it triggers."""
    expire(hc, now_s, p)
    e164 = classify(cdr.callee, ctx.country).e164
    if ctx.high_risk_prefixes and matches_prefix(e164, ctx.high_risk_prefixes) is not None:
        return []  # premium_destination's ranges: one detector per sign
    end_s = cdr.end.timestamp()
    minutes = cdr.billsec_s / 60.0
    listed = dest in p.high_cost_country_codes
    first, held = hc["first_end_s"], dest in hc["held"]
    if dest not in first and len(first) < MAX_DESTINATIONS:
        first[dest] = end_s
    known = not held and dest in first and end_s - first[dest] >= p.high_cost_window_s
    if listed and not held:
        hc["hour_min"][dest] = hc["hour_min"].get(dest, 0.0) + minutes
    if known and not listed:
        return _judge(hc, now_s, ctx, p)  # a destination the customer calls: never counted
    cold = now_s - hc["since_s"] < p.high_cost_cold_start_h * 3600.0
    flag = KNOWN if known else (COLD if cold and not listed else NEW)
    cost = ctx.rates.cost(e164, cdr.billsec_s) if e164 else None
    CALLS.add(hc, [now_s, minutes, cdr.call_id, dest, cost, end_s - cdr.billsec_s, flag, end_s],
              max_entries=entry_cap())
    return _judge(hc, now_s, ctx, p)


def is_new(hc: dict[str, Any], dest: str, now_s: float, p: ArbitrageParams) -> bool:
    """Whether ``dest`` is new to the customer at ``now_s``: never answered, first answered inside the window, or held.

    >>> p, hc = ArbitrageParams(), new_state()
    >>> hc["first_end_s"]["+239"] = 0.0
    >>> is_new(hc, "+239", 600.0, p), is_new(hc, "+239", 20_000.0, p), is_new(hc, "+216 TN", 20_000.0, p)
    (True, False, True)
    """
    if dest in hc.get("held", ()):
        return True
    first = hc.get("first_end_s", {}).get(dest)
    return first is None or now_s - first < p.high_cost_window_s


def follows(hc: dict[str, Any], dest: str, now_s: float, p: ArbitrageParams) -> bool:
    """Whether a call to ``dest`` can count now: new, or on the list (counted above its baseline)."""
    return dest in p.high_cost_country_codes or is_new(hc, dest, now_s, p)


def setup_check(
    hc: dict[str, Any], calls_up: list[tuple[CallDetailRecord, str]], intl_up: int, now_s: float,
    ctx: CustomerContext, p: ArbitrageParams,
) -> list[Decision]:
    """The suspension the calls up now give at call setup (calls in progress only), if any.

    ``calls_up``: the customer's outbound calls still up at ``now_s`` (UTC epoch s) with
    their :func:`destination`; ``intl_up``: all its international calls up. The calls up to
    destinations new to the customer count, ringing or answered: ``listed /
    high_cost_setup_lines + unlisted / high_cost_setup_unlisted_lines >= 1``, with the counted
    calls more than ``high_cost_setup_min_share`` of ``intl_up``, suspends the customer's outbound
    international calls (scope ``outbound_international``). Unlisted destinations do not count
    during the cold start, nor do the rules' ``high_risk_prefixes`` (``premium_destination``'s).
    Source: TransNexus 2019 (111 calls to 37 countries in 16 min: attacks open many lines at
    once) and issue 9's 2-30 parallel lines; a customer's usual destinations are never new, and
    the share keeps a firm calling forty countries, a few of them new, out (the detection
    benchmark's ``many_countries`` trap).
    """
    if not p.high_cost_setup_lines and not p.high_cost_setup_unlisted_lines:
        return []
    _upgrade(hc)
    cold = hc["since_s"] is None or now_s - hc["since_s"] < p.high_cost_cold_start_h * 3600.0
    listed: list[tuple[CallDetailRecord, str]] = []
    unlisted: list[tuple[CallDetailRecord, str]] = []
    for cdr, dest in calls_up:
        if not is_new(hc, dest, now_s, p):
            continue
        e164 = classify(cdr.callee, ctx.country).e164
        if ctx.high_risk_prefixes and matches_prefix(e164, ctx.high_risk_prefixes) is not None:
            continue
        if dest in p.high_cost_country_codes:
            listed.append((cdr, dest))
        elif not cold:
            unlisted.append((cdr, dest))
    share = (len(listed) / p.high_cost_setup_lines if p.high_cost_setup_lines else 0.0) + (
        len(unlisted) / p.high_cost_setup_unlisted_lines if p.high_cost_setup_unlisted_lines else 0.0)
    counted = listed + unlisted
    if share < 1.0 - 1e-9 or len(counted) <= p.high_cost_setup_min_share * intl_up:
        return []
    by_dest: dict[str, int] = {}
    for _cdr, dest in counted:
        by_dest[dest] = by_dest.get(dest, 0) + 1
    order = sorted(by_dest, key=lambda d: (-by_dest[d], d))
    answered = sum(1 for cdr, _dest in counted if cdr.answered)
    if hc["ep"] is None:
        hc["ep"] = iso(now_s)

    def shown(group: list[tuple[CallDetailRecord, str]]) -> str:
        dests = [d for d in order if any(dest == d for _cdr, dest in group)]
        text = ", ".join(f"{d}: {by_dest[d]}" for d in dests[:8])
        return text + (", …" if len(dests) > 8 else "")

    parts = [f"{len(listed)} on the high-cost list ({shown(listed)})" if listed else "",
             f"{len(unlisted)} not on it ({shown(unlisted)})" if unlisted else ""]
    mix = (f" (a mix by shares: {len(listed)}/{p.high_cost_setup_lines} + {len(unlisted)}/"
           f"{p.high_cost_setup_unlisted_lines} = {share:.2f})" if listed and unlisted else "")
    reason = (
        f"Customer {ctx.customer_id} has {len(counted)} of its {intl_up} international calls up at once "
        f"({answered} answered) going to destinations it never called before: {' and '.join(x for x in parts if x)}. "
        f"At call setup {p.high_cost_setup_lines} such calls to listed destinations or "
        f"{p.high_cost_setup_unlisted_lines} to unlisted ones{mix}, when they are more than "
        f"{p.high_cost_setup_min_share:.0%} of the customer's international calls up, are IRSF (clause 8.2): "
        f"outbound international calls of {ctx.customer_id} are suspended."
    )
    evidence: dict[str, Any] = {
        "check": "high_cost",
        "rule": "call_setup",
        "calls_up": len(counted),
        "international_calls_up": intl_up,
        "answered": answered,
        "listed": len(listed),
        "unlisted": len(unlisted),
        "destinations": {d: by_dest[d] for d in order},
        "thresholds": {
            "high_cost_setup_lines": p.high_cost_setup_lines,
            "high_cost_setup_unlisted_lines": p.high_cost_setup_unlisted_lines,
            "high_cost_setup_min_share": p.high_cost_setup_min_share,
            "high_cost_cold_start_h": p.high_cost_cold_start_h,
        },
        "sample_call_ids": [cdr.call_id for cdr, _dest in counted[-p.sample_call_ids:]] if p.sample_call_ids else [],
    }
    return [level_decision("critical", ScopeKind.OUTBOUND_INTERNATIONAL, ctx.customer_id, episode=hc["ep"],
                           occurred_at_s=now_s, reason=reason, evidence=evidence)]


def _fraction(minutes: float, cost: float, per_min: float, per_cost: float) -> float:
    """Share of a level reached: unpriced minutes against its minutes, priced cost against its cost."""
    return minutes / per_min + cost / per_cost


def lines(entries: list[list[Any]]) -> int:
    """Exact peak of simultaneous answered calls among ``entries`` (talk intervals, half-open).

    >>> lines([[0, 1, "a", "+239", None, 0.0, 1, 60.0], [0, 1, "b", "+239", None, 30.0, 1, 90.0],
    ...        [0, 1, "c", "+239", None, 90.0, 1, 120.0]])
    2
    """
    points = sorted([(e[_TO], -1) for e in entries] + [(e[_FROM], 1) for e in entries])
    count = peak = 0
    for _, delta in points:  # at equal times an end (-1) sorts before a start (+1)
        count += delta
        peak = max(peak, count)
    return peak


def _judge(hc: dict[str, Any], now_s: float, ctx: CustomerContext, p: ArbitrageParams) -> list[Decision]:
    """The decision the window supports now, if any (the episode ends when none)."""
    upper = _fraction(hc["new_min"] + hc["cold_min"] + hc["known_min"],
                      hc["new_cost"] + hc["cold_cost"] + hc["known_cost"], p.high_cost_min_minutes,
                      p.high_cost_min_cost)
    if upper < 1.0 - 1e-9:  # cheap bound: even every kept call together stays under the alert level
        hc["ep"] = None
        return []
    window_h = p.high_cost_window_s / 3600.0
    known: dict[str, list[Any]] = {}
    for e in hc["calls"]:
        if e[_FLAG] == KNOWN:
            known.setdefault(e[_DEST], []).append(e)
    share: dict[str, float] = {}  # known listed destination -> share of its window traffic above its baseline
    baseline: dict[str, float] = {}
    for dest, entries in known.items():
        base = _baseline(hc, dest, hc["hour"], p.high_cost_baseline_alpha) if hc["hour"] is not None else 0.0
        total = sum(e[_MIN] for e in entries)
        over = total - p.high_cost_history_factor * base * window_h
        baseline[dest] = base
        if over > 0 and total > 0:
            share[dest] = over / total
    counted = [e for e in hc["calls"] if e[_FLAG] == NEW or (e[_FLAG] == KNOWN and e[_DEST] in share)]
    cold = [e for e in hc["calls"] if e[_FLAG] == COLD]
    for chosen, need in ((counted, p.high_cost_min_lines), (counted + cold, p.high_cost_cold_start_lines)):
        if chosen is not counted and not cold:
            break
        minutes = sum(e[_MIN] * share.get(e[_DEST], 1.0) for e in chosen if e[_COST] is None)
        cost = sum(e[_COST] * share.get(e[_DEST], 1.0) for e in chosen if e[_COST] is not None)
        if _fraction(minutes, cost, p.high_cost_min_minutes, p.high_cost_min_cost) < 1.0 - 1e-9:
            continue
        if len(chosen) < need:
            continue
        peak = lines(chosen)
        if peak < need:
            continue
        critical = _fraction(minutes, cost, p.high_cost_critical_minutes, p.high_cost_critical_cost) >= 1.0 - 1e-9
        return [_decide(hc, now_s, ctx, p, chosen, share, baseline, minutes, cost, peak, need,
                        "critical" if critical else "warning")]
    hc["ep"] = None
    return []


def _decide(
    hc: dict[str, Any],
    now_s: float,
    ctx: CustomerContext,
    p: ArbitrageParams,
    chosen: list[list[Any]],
    share: dict[str, float],
    baseline: dict[str, float],
    minutes: float,
    cost: float,
    peak: int,
    need: int,
    level: AlertLevel,
) -> Decision:
    if hc["ep"] is None:
        hc["ep"] = iso(now_s)
    held = hc["held"]
    for e in chosen:
        if e[_FLAG] != KNOWN and e[_DEST] not in held:
            held.append(e[_DEST])  # new destinations of an alert stay new until a verdict clears them
    by_dest: dict[str, dict[str, Any]] = {}
    for e in chosen:
        row = by_dest.setdefault(e[_DEST], {"calls": 0, "minutes": 0.0, "cost": None, "new": e[_FLAG] != KNOWN})
        k = share.get(e[_DEST], 1.0)
        row["calls"] += 1
        row["minutes"] += e[_MIN] * k
        if e[_COST] is not None:
            row["cost"] = (row["cost"] or 0.0) + e[_COST] * k
    for row in by_dest.values():
        row["minutes"] = round(row["minutes"], 3)
        row["cost"] = None if row["cost"] is None else round(row["cost"], 2)
    order = sorted(by_dest, key=lambda d: (-(by_dest[d]["cost"] or 0.0), -by_dest[d]["minutes"], d))
    currency = ctx.rates.currency
    priced = any(e[_COST] is not None for e in chosen)
    shown = ", ".join(
        f"{d} {by_dest[d]['minutes']:.1f} min" + (f" {currency} {by_dest[d]['cost']:.2f}" if by_dest[d]["cost"]
                                                  is not None else "")
        for d in order[:5]
    )
    amount = " and ".join(
        part for part in (f"{currency} {cost:,.2f}" if priced else "", f"{minutes:.1f} unpriced min" if
                          minutes > 0 or not priced else "") if part
    )
    new_only = all(row["new"] for row in by_dest.values())
    what = "destinations it never called before" if new_only else "destinations new to it or far above its baseline"
    limit_min = p.high_cost_critical_minutes if level == "critical" else p.high_cost_min_minutes
    limit_cost = p.high_cost_critical_cost if level == "critical" else p.high_cost_min_cost
    cold = any(e[_FLAG] == COLD for e in chosen)
    reason = (
        f"Customer {ctx.customer_id} sent {amount} of answered international calls to {what} ({shown}) "
        f"in the last {p.high_cost_window_s / 60:.0f} min, up to {peak} at once; the {level} level is "
        f"{limit_min:g} min or {currency} {limit_cost:,.2f} with {need}+ parallel lines"
        + (" (unlisted destinations in the customer's first hours)" if cold else "")
        + f" (clause 8.2, IRSF), so outbound international calls of {ctx.customer_id} are "
        f"{'suspended' if level == 'critical' else 'flagged for review'}."
    )
    evidence: dict[str, Any] = {
        "check": "high_cost",
        "estimated_cost": round(cost, 2) if priced else None,
        "currency": currency,
        "minutes": round(minutes, 3),
        "calls": len(chosen),
        "lines": peak,
        "destinations": {d: by_dest[d] for d in order},
        "new_destinations": [d for d in order if by_dest[d]["new"]],
        "baseline_minutes_per_hour": {d: round(v, 4) for d, v in sorted(baseline.items())},
        "cold_start": cold,
        "history_hours": hc["hours_seen"],
        "window_s": p.high_cost_window_s,
        "thresholds": {
            "high_cost_min_minutes": p.high_cost_min_minutes,
            "high_cost_critical_minutes": p.high_cost_critical_minutes,
            "high_cost_min_cost": p.high_cost_min_cost,
            "high_cost_critical_cost": p.high_cost_critical_cost,
            "high_cost_min_lines": p.high_cost_min_lines,
            "high_cost_cold_start_lines": p.high_cost_cold_start_lines,
            "high_cost_history_factor": p.high_cost_history_factor,
        },
        "sample_call_ids": [e[_ID] for e in chosen[-p.sample_call_ids:]] if p.sample_call_ids else [],
    }
    if CALLS.capped(hc):
        evidence["capped_calls"] = CALLS.capped(hc)
    return level_decision(level, ScopeKind.OUTBOUND_INTERNATIONAL, ctx.customer_id, episode=hc["ep"],
                          occurred_at_s=now_s, reason=reason, evidence=evidence)
