"""``arbitrage``: traffic generated to earn credit or termination revenue (clause 8.2).

Clause 8.2 forbids traffic arbitrage and traffic generated merely to earn advantages or
credit by sending or receiving calls. Three independent checks, each over a sliding
event-time window of ``window_s`` and each with its own thresholds and scope:

a. **reward / auto top-up** (outbound): many answered calls to a few destination numbers
   with near-constant talk time. Per destination number: ``calls >= reward_min_calls``
   and coefficient of variation of ``billsec_s`` ``<= reward_max_duration_cv``. Scope:
   ``destination_prefix`` = the number itself; ``cli`` when 2 to
   ``reward_max_destinations`` numbers qualify together and one CLI dials them all; when
   more numbers qualify than that the pattern is no longer "a few numbers" and the scope
   widens to ``cli`` (one CLI) or ``account``.
b. **inbound traffic pumping** to a DID: ``calls >= pumping_min_calls`` inbound calls
   to one DID from at most ``pumping_max_origin_ranges`` caller ranges (the first
   ``pumping_prefix_digits`` digits of the caller) with a mean answered duration
   ``>= pumping_min_acd_s``. Scope: ``did``.
c. **high-cost minutes far above the customer's history** (outbound, IRSF): answered
   minutes to international numbers of ``high_cost_country_codes`` in the window
   ``>= high_cost_min_minutes`` and ``>= high_cost_history_factor`` times the customer's
   own baseline (EWMA of those minutes per closed UTC hour, scaled to the window).
   Scope: ``outbound_international`` (value: the customer id).

Warning → ``alert`` (level ``warning``); critical → ``suspension`` (level ``critical``).
Emergency, toll-free and allowlisted (``ctx.allow_destinations``) destinations never
count in (a) or (c). All thresholds are inclusive (``>=`` / ``<=`` fire).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, iso
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import EventType, ScopeKind
from tollguard.numbers import IRSF_COUNTRY_CODES, NumberType, classify, matches_prefix


#: IRSF target country codes: recurrent entries of the CFCA Fraud Loss Survey's top IRSF
#: destinations and of GSMA IRSF hot lists (small islands, West Africa, Baltic premium
#: ranges, satellite / international networks +881/+882/+883).
class ArbitrageParams(DetectorParams):
    """Thresholds of ``arbitrage``: counts, minutes and ACD fire at ``>=``, CV and origin ranges at ``<=``.

    Notes
    -----
    Sources of the defaults:

    * warning / critical levels (30 / 60 reward calls, 60 / 120 pumping calls, 30 / 120
      high-cost minutes, ACD 120 s, 3 destinations, 3 origin ranges, factor 5, 5 min/h):
      tollguard's operator defaults for clause 8.2, tuned per customer in the rules file;
    * ``reward_max_duration_cv`` 0.05: human talk times are roughly exponential (CV about
      1, the holding-time model of ITU-T E.500-series traffic engineering); 0.05 is a
      timer;
    * ``high_cost_country_codes``: typical IRSF target lists (CFCA Fraud Loss Survey, GSMA
      IRSF hot lists); +371 / +372 are EU members but their premium-like ranges recur there;
    * ``high_cost_number_types``: libphonenumber types of ordinary numbers, plus unknown and
      invalid (IRSF abuses unallocated ranges); premium types are ``premium_destination``'s;
    * ``high_cost_baseline_alpha`` 0.05 per hour: half-life ln 0.5 / ln 0.95 = 13.5 h, so
      the baseline remembers about a day of the customer's traffic.
    """

    window_s: float = Field(3600, ge=60, le=7 * 86_400, description="sliding event-time window, s")
    # a. reward / auto top-up
    reward_enabled: bool = Field(True, description="run the reward / auto top-up check (a)")
    reward_min_calls: int = Field(30, ge=2, le=100_000, description="answered calls to one number → alert")
    reward_critical_calls: int = Field(60, ge=2, le=100_000, description="answered calls to it → suspend")
    reward_max_duration_cv: float = Field(
        0.05, ge=0, le=10, description="max std/mean of billsec_s: robots hang up on a timer, people do not"
    )
    reward_max_destinations: int = Field(3, ge=1, le=1_000, description="'a few numbers'; more widens scope")
    # b. inbound traffic pumping
    pumping_enabled: bool = Field(True, description="run the inbound traffic-pumping check (b)")
    pumping_min_calls: int = Field(60, ge=1, le=1_000_000, description="inbound calls to one DID → alert")
    pumping_critical_calls: int = Field(
        120, ge=1, le=1_000_000, description="inbound calls to one DID → suspension"
    )
    pumping_prefix_digits: int = Field(
        5, ge=1, le=15, description="caller digits after '+' naming an origin range (5 = '+37126': country + range)"
    )
    pumping_max_origin_ranges: int = Field(3, ge=1, le=1_000, description="at most this many caller ranges")
    pumping_min_acd_s: float = Field(120, ge=0, le=86_400, description="mean answered duration >= this, s")
    # c. high-cost minutes above the customer's history
    high_cost_enabled: bool = Field(True, description="run the high-cost minutes check (c)")
    high_cost_country_codes: tuple[str, ...] = Field(
        IRSF_COUNTRY_CODES, description="IRSF target country codes (CFCA survey, GSMA IRSF hot lists)"
    )
    high_cost_number_types: tuple[NumberType, ...] = Field(
        (NumberType.FIXED_LINE, NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE, NumberType.VOIP,
         NumberType.UNKNOWN, NumberType.INVALID),
        description="types counted; unknown/invalid too: IRSF uses unallocated ranges",
    )  # fmt: skip
    high_cost_min_minutes: float = Field(30, gt=0, le=1_000_000, description="answered min in window → alert")
    high_cost_critical_minutes: float = Field(
        120, gt=0, le=1_000_000, description="answered minutes in window → suspension"
    )
    high_cost_history_factor: float = Field(5, ge=1, le=1_000, description="and at least this x the baseline")
    high_cost_baseline_minutes: float = Field(
        5, ge=0, le=1_000_000, description="baseline, minutes per hour, before any hour of history closed"
    )
    high_cost_baseline_alpha: float = Field(
        0.05, gt=0, le=1, description="EWMA weight of each closed hour (half-life 13.5 h: a day of memory)"
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="most recent call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("reward_min_calls", "reward_critical_calls"),
        ("pumping_min_calls", "pumping_critical_calls"),
        ("high_cost_min_minutes", "high_cost_critical_minutes"),
    )


def _samples(calls: list[list[Any]], n: int, idx: int) -> list[str]:
    return [c[idx] for c in calls[len(calls) - n :]] if n else []


class ArbitrageDetector(Detector):
    """Reward / auto top-up, inbound pumping and high-cost-minute arbitrage per customer.

    Every check keeps running sums over its window (O(1) amortised work per CDR): a
    call is in the window while ``end > now - window_s`` (``now`` = latest CDR end seen).
    Per-number and per-DID groups are dropped when their window empties (checked when
    touched, and by a sweep of all groups once per ``window_s`` of event time).

    State::

        {"last_end_s": float, "sweep_s": float, "hot": [number, ...],
         "reward": {number: {"calls": [[end_s, billsec_s, call_id, cli], ...], "k": float,
                             "s1": float, "s2": float, "clis": {cli: n}, "ep": str | None}},
         "pump": {did: {"calls": [[end_s, billsec_s, call_id, range], ...], "answered": n,
                        "billsec": float, "ranges": {range: n}, "ep": str | None}},
         "hc": {"calls": [[end_s, minutes, call_id, cc], ...], "minutes": float,
                "by_cc": {cc: [n, minutes]}, "ep": str | None, "hour": int | None,
                "hour_min": float, "base": float | None, "hours": int}}

    ``k``, ``s1``, ``s2``: shift (first billsec) and sums of ``billsec - k`` and its square,
    for a numerically stable CV. ``hot``: numbers that met the reward test when last seen.
    ``base``: EWMA of high-cost minutes per closed UTC hour (None = no history yet).
    ``ep``: episode, ISO time at which the group first met a threshold.

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> det = ArbitrageDetector()
    >>> ctx = CustomerContext("c1", country="IT", params={"arbitrage": ArbitrageParams()})
    >>> state = det.initial_state()
    >>> out = [d for i in range(30) for d in det.update(state, make_cdr(
    ...     call_id=f"r{i}", direction="outbound", caller="+390298765432", callee="+393331234567",
    ...     start_s=100 * i, end_s=100 * i + 45), ctx)]
    >>> [(str(d.type), d.level, str(d.scope_kind), d.scope_value, d.evidence["cv"]) for d in out]
    [('alert', 'warning', 'destination_prefix', '+393331234567', 0.0)]
    """

    name = "arbitrage"
    clause = "8.2"
    params_model = ArbitrageParams

    def initial_state(self) -> dict[str, Any]:
        return {
            "last_end_s": 0.0, "sweep_s": 0.0, "hot": [], "reward": {}, "pump": {},
            "hc": {"calls": [], "minutes": 0.0, "by_cc": {}, "ep": None, "hour": None, "hour_min": 0.0,
                   "base": None, "hours": 0},
        }  # fmt: skip

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        p: ArbitrageParams = ctx.params[self.name]  # type: ignore[assignment]
        now_s = max(cdr.end.timestamp(), state["last_end_s"])
        state["last_end_s"] = now_s
        self._close_hours(state["hc"], now_s, p)
        if now_s >= state["sweep_s"]:
            self._sweep(state, now_s, p)
        if cdr.direction is Direction.INBOUND:
            return self._pumping(state, cdr, now_s, p) if p.pumping_enabled else []
        if cdr.direction is not Direction.OUTBOUND or cdr.billsec_s <= 0:
            return []
        info = classify(cdr.callee, ctx.country)
        if info.is_emergency or info.number_type is NumberType.TOLL_FREE:
            return []
        dest = info.e164 or cdr.callee.strip()
        allow = ctx.allow_destinations
        if allow and (matches_prefix(dest, allow) if dest.startswith("+") else dest in allow):
            return []
        out = self._reward(state, cdr, dest, now_s, ctx, p) if p.reward_enabled else []
        if p.high_cost_enabled and info.international and info.number_type in p.high_cost_number_types:
            cc = matches_prefix(info.e164, p.high_cost_country_codes)
            if cc is not None:
                out += self._high_cost(state["hc"], cdr, cc, now_s, ctx, p)
        return out

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        p: ArbitrageParams = ctx.params[self.name]  # type: ignore[assignment]
        if math.isfinite(now_s):
            self._close_hours(state["hc"], now_s, p)
            if now_s >= state["sweep_s"]:
                self._sweep(state, now_s, p)
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        hc = state["hc"]
        if scope_kind in (ScopeKind.ACCOUNT, ScopeKind.OUTBOUND_INTERNATIONAL):
            hc.update(calls=[], minutes=0.0, by_cc={}, ep=None)
        if scope_kind is ScopeKind.ACCOUNT:
            state["reward"], state["pump"], state["hot"] = {}, {}, []
        elif scope_kind is ScopeKind.DID:
            state["pump"].pop(scope_value, None)
        elif scope_kind is ScopeKind.DESTINATION_PREFIX:
            state["reward"].pop(scope_value, None)
        elif scope_kind is ScopeKind.CLI:
            state["reward"] = {d: g for d, g in state["reward"].items() if scope_value not in g["clis"]}
        state["hot"] = [d for d in state["hot"] if d in state["reward"]]

    # ------------------------------------------------------------------ a. reward / auto top-up

    @staticmethod
    def _prune_reward(g: dict[str, Any], cutoff_s: float) -> None:
        calls, k, clis = g["calls"], g["k"], g["clis"]
        n = 0
        while n < len(calls) and calls[n][0] <= cutoff_s:
            x = calls[n][1] - k
            g["s1"] -= x
            g["s2"] -= x * x
            cli = calls[n][3]
            clis[cli] -= 1
            if not clis[cli]:
                del clis[cli]
            n += 1
        if n:
            del calls[:n]

    @staticmethod
    def _cv(g: dict[str, Any]) -> tuple[float, float]:
        n = len(g["calls"])
        d1 = g["s1"] / n
        mean = g["k"] + d1
        var = max(g["s2"] / n - d1 * d1, 0.0)
        return mean, (math.sqrt(var) / mean if mean > 0 else math.inf)

    def _reward_ok(self, g: dict[str, Any], p: ArbitrageParams) -> bool:
        return len(g["calls"]) >= p.reward_min_calls and self._cv(g)[1] <= p.reward_max_duration_cv

    def _reward(
        self, state: dict[str, Any], cdr: CallDetailRecord, dest: str, now_s: float, ctx: CustomerContext,
        p: ArbitrageParams,
    ) -> list[Decision]:  # fmt: skip
        groups, cutoff_s = state["reward"], now_s - p.window_s
        g = groups.get(dest)
        if g is None:
            g = groups[dest] = {"calls": [], "k": cdr.billsec_s, "s1": 0.0, "s2": 0.0, "clis": {}, "ep": None}
        else:
            self._prune_reward(g, cutoff_s)
        cli = cdr.did or cdr.caller
        x = cdr.billsec_s - g["k"]
        g["calls"].append([now_s, cdr.billsec_s, cdr.call_id, cli])
        g["s1"] += x
        g["s2"] += x * x
        g["clis"][cli] = g["clis"].get(cli, 0) + 1
        if not self._reward_ok(g, p):
            g["ep"] = None
            if dest in state["hot"]:
                state["hot"].remove(dest)
            return []
        if g["ep"] is None:
            g["ep"] = iso(now_s)
        cluster = [dest]
        for other in state["hot"]:
            og = groups.get(other)
            if other != dest and og is not None:
                self._prune_reward(og, cutoff_s)
                if og["calls"] and self._reward_ok(og, p):
                    cluster.append(other)
        state["hot"] = sorted(cluster)
        clis = sorted({c for d in cluster for c in groups[d]["clis"]})
        counts = {d: len(groups[d]["calls"]) for d in sorted(cluster)}
        if len(cluster) > p.reward_max_destinations:
            kind, value = (ScopeKind.CLI, clis[0]) if len(clis) == 1 else (ScopeKind.ACCOUNT, ctx.customer_id)
            n_max = max(counts.values())
        elif len(cluster) > 1 and len(clis) == 1:
            kind, value, n_max = ScopeKind.CLI, clis[0], max(counts.values())
        else:
            kind, value, n_max = ScopeKind.DESTINATION_PREFIX, dest, counts[dest]
        critical = n_max >= p.reward_critical_calls
        mean, cv = self._cv(g)
        episode = dest_ep = g["ep"]
        if kind is not ScopeKind.DESTINATION_PREFIX:
            episode = min(groups[d]["ep"] or dest_ep for d in cluster)
        limit = p.reward_critical_calls if critical else p.reward_min_calls
        level = "critical" if critical else "warning"
        reason = (
            f"Customer {ctx.customer_id} made {counts[dest]} answered calls of near-constant length (mean "
            f"{mean:.1f} s, CV {cv:.3f}) to {dest} in the last {p.window_s / 60:.0f} min "
            f"({len(cluster)} such number(s) from {len(clis)} CLI(s)); the {level} threshold "
            f"is {limit} calls with CV <= {p.reward_max_duration_cv:g} (clause 8.2, reward/auto top-up), so "
            f"{kind} {value} is {'suspended' if critical else 'flagged for review'}."
        )
        evidence = {
            "check": "reward",
            "destination": dest,
            "calls": counts[dest],
            "mean_billsec_s": round(mean, 3),
            "cv": round(cv, 4),
            "cluster": counts,
            "clis": clis[:10],
            "window_s": p.window_s,
            "thresholds": {
                "reward_min_calls": p.reward_min_calls,
                "reward_critical_calls": p.reward_critical_calls,
                "reward_max_duration_cv": p.reward_max_duration_cv,
                "reward_max_destinations": p.reward_max_destinations,
            },
            "sample_call_ids": _samples(g["calls"], p.sample_call_ids, 2),
        }
        return [self._decision(critical, kind, value, episode, now_s, reason, evidence)]

    # ------------------------------------------------------------------ b. inbound pumping

    @staticmethod
    def _prune_pump(g: dict[str, Any], cutoff_s: float) -> None:
        calls, ranges = g["calls"], g["ranges"]
        n = 0
        while n < len(calls) and calls[n][0] <= cutoff_s:
            billsec = calls[n][1]
            g["billsec"] -= billsec
            g["answered"] -= int(billsec > 0)
            ranges[calls[n][3]] -= 1
            if not ranges[calls[n][3]]:
                del ranges[calls[n][3]]
            n += 1
        if n:
            del calls[:n]

    def _pumping(
        self, state: dict[str, Any], cdr: CallDetailRecord, now_s: float, p: ArbitrageParams
    ) -> list[Decision]:
        did = cdr.did or cdr.callee
        g = state["pump"].get(did)
        if g is None:
            g = state["pump"][did] = {"calls": [], "answered": 0, "billsec": 0.0, "ranges": {}, "ep": None}
        else:
            self._prune_pump(g, now_s - p.window_s)
        caller = cdr.caller.strip()
        origin = caller[: p.pumping_prefix_digits + caller.startswith("+")]
        g["calls"].append([now_s, cdr.billsec_s, cdr.call_id, origin])
        g["billsec"] += cdr.billsec_s
        g["answered"] += int(cdr.billsec_s > 0)
        g["ranges"][origin] = g["ranges"].get(origin, 0) + 1
        n, ranges = len(g["calls"]), g["ranges"]
        acd = g["billsec"] / g["answered"] if g["answered"] else 0.0
        if n < p.pumping_min_calls or len(ranges) > p.pumping_max_origin_ranges or acd < p.pumping_min_acd_s:
            g["ep"] = None
            return []
        if g["ep"] is None:
            g["ep"] = iso(now_s)
        critical = n >= p.pumping_critical_calls
        shown = ", ".join(sorted(ranges))
        reason = (
            f"DID {did} received {n} inbound calls in the last {p.window_s / 60:.0f} min from only "
            f"{len(ranges)} caller range(s) ({shown}) with a mean answered duration of {acd:.0f} s; the "
            f"{'critical' if critical else 'warning'} threshold is "
            f"{p.pumping_critical_calls if critical else p.pumping_min_calls} calls from <= "
            f"{p.pumping_max_origin_ranges} ranges with ACD >= {p.pumping_min_acd_s:g} s (clause 8.2, "
            f"traffic pumping), so DID {did} is {'suspended' if critical else 'flagged for review'}."
        )
        evidence = {
            "check": "pumping",
            "did": did,
            "calls": n,
            "answered_calls": g["answered"],
            "acd_s": round(acd, 3),
            "origin_ranges": dict(sorted(ranges.items())),
            "window_s": p.window_s,
            "thresholds": {
                "pumping_min_calls": p.pumping_min_calls,
                "pumping_critical_calls": p.pumping_critical_calls,
                "pumping_max_origin_ranges": p.pumping_max_origin_ranges,
                "pumping_prefix_digits": p.pumping_prefix_digits,
                "pumping_min_acd_s": p.pumping_min_acd_s,
            },
            "sample_call_ids": _samples(g["calls"], p.sample_call_ids, 2),
        }
        return [self._decision(critical, ScopeKind.DID, did, g["ep"], now_s, reason, evidence)]

    # ------------------------------------------------------------------ c. high-cost minutes

    @staticmethod
    def _close_hours(hc: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
        """Fold every UTC hour that ended by ``now_s`` into the EWMA baseline (empty hours in closed form)."""
        hour = int(now_s // 3600)
        if hc["hour"] is None:
            hc["hour"] = hour
        elif hour > hc["hour"]:
            a = p.high_cost_baseline_alpha
            base = p.high_cost_baseline_minutes if hc["base"] is None else hc["base"]
            base = (1 - a) * base + a * hc["hour_min"]
            hc["base"] = base * (1 - a) ** (hour - hc["hour"] - 1)
            hc["hours"] += hour - hc["hour"]
            hc["hour"], hc["hour_min"] = hour, 0.0

    @staticmethod
    def _prune_hc(hc: dict[str, Any], cutoff_s: float) -> None:
        calls, by_cc = hc["calls"], hc["by_cc"]
        n = 0
        while n < len(calls) and calls[n][0] <= cutoff_s:
            _, minutes, _, cc = calls[n]
            hc["minutes"] -= minutes
            entry = by_cc[cc]
            entry[0] -= 1
            entry[1] -= minutes
            if not entry[0]:
                del by_cc[cc]
            n += 1
        if n:
            del calls[:n]
            if not calls:
                hc["minutes"], hc["ep"] = 0.0, None

    def _high_cost(
        self, hc: dict[str, Any], cdr: CallDetailRecord, cc: str, now_s: float, ctx: CustomerContext,
        p: ArbitrageParams,
    ) -> list[Decision]:  # fmt: skip
        self._prune_hc(hc, now_s - p.window_s)
        minutes = cdr.billsec_s / 60.0
        hc["calls"].append([now_s, minutes, cdr.call_id, cc])
        hc["minutes"] += minutes
        hc["hour_min"] += minutes
        entry = hc["by_cc"].setdefault(cc, [0, 0.0])
        entry[0] += 1
        entry[1] += minutes
        total = hc["minutes"]
        base = p.high_cost_baseline_minutes if hc["base"] is None else hc["base"]
        need = p.high_cost_history_factor * base * p.window_s / 3600.0
        if total < p.high_cost_min_minutes or total < need:
            hc["ep"] = None
            return []
        if hc["ep"] is None:
            hc["ep"] = iso(now_s)
        critical = total >= p.high_cost_critical_minutes
        by_cc = {k: round(v[1], 3) for k, v in sorted(hc["by_cc"].items(), key=lambda kv: -kv[1][1])}
        shown = ", ".join(f"{k} {v:.1f} min" for k, v in list(by_cc.items())[:5])
        verdict = "suspended" if critical else "flagged for review"
        ratio = total / (base * p.window_s / 3600.0) if base > 0 else math.inf
        reason = (
            f"Customer {ctx.customer_id} talked {total:.1f} min to high-cost international destinations "
            f"({shown}) in the last {p.window_s / 60:.0f} min, {ratio:.1f}x its usual {base:.1f} min/h; the "
            f"{'critical' if critical else 'warning'} threshold is "
            f"{p.high_cost_critical_minutes if critical else p.high_cost_min_minutes:g} min and "
            f"{p.high_cost_history_factor:g}x the baseline (clause 8.2, IRSF arbitrage), so outbound "
            f"international calls of {ctx.customer_id} are {verdict}."
        )
        evidence = {
            "check": "high_cost",
            "minutes": round(total, 3),
            "calls": len(hc["calls"]),
            "minutes_by_country_code": by_cc,
            "baseline_minutes_per_hour": round(base, 4),
            "history_hours": hc["hours"],
            "ratio_to_baseline": round(ratio, 3) if math.isfinite(ratio) else None,
            "window_s": p.window_s,
            "thresholds": {
                "high_cost_min_minutes": p.high_cost_min_minutes,
                "high_cost_critical_minutes": p.high_cost_critical_minutes,
                "high_cost_history_factor": p.high_cost_history_factor,
                "required_minutes": round(max(need, p.high_cost_min_minutes), 3),
            },
            "sample_call_ids": _samples(hc["calls"], p.sample_call_ids, 2),
        }
        return [
            self._decision(
                critical, ScopeKind.OUTBOUND_INTERNATIONAL, ctx.customer_id, hc["ep"], now_s, reason, evidence
            )
        ]

    # ------------------------------------------------------------------ shared

    def _sweep(self, state: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
        """Prune every group and drop the empty ones; runs once per ``window_s`` of event time."""
        cutoff_s = now_s - p.window_s
        for key, prune in (("reward", self._prune_reward), ("pump", self._prune_pump)):
            groups = state[key]
            for name in list(groups):
                prune(groups[name], cutoff_s)
                if not groups[name]["calls"]:
                    del groups[name]
        state["hot"] = [d for d in state["hot"] if d in state["reward"]]
        self._prune_hc(state["hc"], cutoff_s)
        state["sweep_s"] = now_s + p.window_s

    @staticmethod
    def _decision(
        critical: bool, kind: ScopeKind, value: str, episode: str, now_s: float, reason: str,
        evidence: dict[str, Any],
    ) -> Decision:  # fmt: skip
        return Decision(
            type=EventType.SUSPENSION if critical else EventType.ALERT,
            level="critical" if critical else "warning",
            scope_kind=kind,
            scope_value=value,
            episode=episode,
            occurred_at_s=now_s,
            reason=reason,
            evidence=evidence,
            check=evidence["check"],
        )
