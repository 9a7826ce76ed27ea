"""``autodialer``: automatically generated outbound campaigns and Wangiri one-ring calls (clause 8.2).

Clause 8.2 forbids automatically generated outbound call campaigns (and clause 8.7
call-centre activity against regulations; a customer authorised to run a call centre
is allowlisted in the rules file, which disables this detector for it).

Per dialling CLI (:func:`detectors.base.customer_number`: the outbound call's ``did``, else
its ``caller``) the detector keeps
the attempts that *started* in the last ``window_s`` seconds of event time and, once
there are ``min_attempts`` of them, measures

* the attempt rate, attempts in the window / window minutes (the gate), and five signs:
* ``distinct``: distinct destinations / attempts ``>= min_distinct_share``;
* ``sequential``: attempts whose callee is within ±1..±``sequential_max_step`` of another
  callee in the window (a number-block sweep) / attempts ``>= min_sequential_share``;
* ``low_asr``: answered / attempts ``<= max_asr``;
* ``short_acd``: mean billsec of answered attempts ``<= max_acd_s`` (no answer: no sign);
* ``regular_gaps``: coefficient of variation of the gaps between attempt starts
  ``<= max_gap_cv`` (a dialer paces; people do not).

Rate ``>= warn_attempts_per_min`` with ``>= warn_signs`` signs → ``alert`` (warning);
rate ``>= critical_attempts_per_min`` with ``>= critical_signs`` signs → ``suspension``
of the CLI. Every comparison is inclusive: exactly at a threshold fires.

Wangiri (one-ring) calls: unanswered (``NO ANSWER``) outbound calls that rang at most
``one_ring_max_s`` (``duration_s``). ``>= wangiri_warn_calls`` in the window → alert;
``>= wangiri_critical_calls`` that are also ``>= wangiri_min_share`` of the attempts →
suspension of the CLI.

Each kind of decision (dialer, wangiri) is returned once per level per episode; the
episode is the ISO time (UTC) at which the level was first reached. A dialer episode
ends when the window holds fewer than ``min_attempts`` attempts, a Wangiri episode when
it holds no one-ring call.

Cost per CDR: O(``sequential_max_step``) dictionary look-ups plus an insertion into the
start-sorted attempt list (at its end, for calls released in end order); rate, ASR, ACD
and the gap CV come from running sums. State per CLI is bounded by the window.
"""

from __future__ import annotations

import bisect
import math
from operator import itemgetter
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import (
    AlertLevel,
    CustomerContext,
    Decision,
    Detector,
    DetectorParams,
    customer_number,
    iso,
    level_decision,
)
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.events import ScopeKind

_START, _KEY, _ANS, _BILL, _RING1, _ID = range(6)
_LEVELS: dict[AlertLevel | None, int] = {None: 0, "warning": 1, "critical": 2}

#: One CLI's window of attempts, by start; the gap sums and the neighbour counts are kept beside it.
ATTEMPTS = Window("att", time=_START, sums={"ans": _ANS, "bill": _BILL, "ring1": _RING1}, on_empty={"bill": 0.0})
_SIGNS = ("distinct", "sequential", "low_asr", "short_acd", "regular_gaps")


class AutodialerParams(DetectorParams):
    """Thresholds of ``autodialer``: defaults are the operator's, tuned per customer in the rules file.

    Rates are attempts per minute (attempts started in the window / ``window_s`` / 60);
    shares are fractions of the attempts in the window; times are seconds. Every
    threshold is inclusive: ``min_*``, ``warn_*``, ``critical_*`` and ``*_signs`` fire
    at or above, ``max_*`` and ``one_ring_max_s`` at or below.

    Notes
    -----
    Sources: clause 8.2 forbids automatic campaigns and clause 8.7 irregular call-centre
    activity but fixes no figure, so every default is the operator's starting point, to
    be tuned per customer in the rules file. The rates (10 and 20 attempts/min: one call
    every 6 s / 3 s from one CLI) are beyond a person dialling by hand; ``max_asr`` 0.25
    and ``max_acd_s`` 30 sit well below the ASR (~0.5-0.7) and ACD (minutes) of people's
    calls; ``max_gap_cv`` 0.3 separates paced dialling (CV ~0) from people (random gaps,
    CV ~1); ``min_sequential_share`` 0.5 is half the attempts in a block sweep, which random
    destinations practically never reach; ``one_ring_max_s`` 3 s is about one ring cycle
    (ITU-T E.180: ~1 s ring, ~4 s silence), the Wangiri bait.
    """

    window_s: float = Field(
        300, ge=60, le=86_400, description="sliding event-time window of attempt starts, s"
    )
    min_attempts: int = Field(
        30, ge=2, le=100_000, description="attempts in the window before the dialer signs are judged"
    )
    warn_attempts_per_min: float = Field(
        10,
        gt=0,
        le=10_000,
        description="alert at or above this rate (one attempt every 6 s; operator default)",
    )
    critical_attempts_per_min: float = Field(
        20,
        gt=0,
        le=10_000,
        description="suspension at or above this rate (one attempt every 3 s; operator default)",
    )
    min_distinct_share: float = Field(
        0.9, ge=0, le=1, description="sign holds when distinct callees / attempts >= this (campaign lists)"
    )
    sequential_max_step: int = Field(
        10, ge=1, le=1_000, description="callees within ±this in their last digits count as a block sweep"
    )
    min_sequential_share: float = Field(
        0.5, ge=0, le=1, description="sign holds when attempts next to another callee / attempts >= this"
    )
    max_asr: float = Field(
        0.25, ge=0, le=1, description="sign holds when answered / attempts <= this (people reach ~0.5-0.7)"
    )
    max_acd_s: float = Field(
        30, ge=0, le=86_400, description="sign holds when mean billsec of answered attempts <= this, s"
    )
    max_gap_cv: float = Field(
        0.3,
        ge=0,
        le=100,
        description="sign holds when std/mean of gaps between attempt starts <= this (pacing)",
    )
    warn_signs: int = Field(2, ge=0, le=5, description="signs (of 5) needed with the warning rate")
    critical_signs: int = Field(3, ge=0, le=5, description="signs (of 5) needed with the critical rate")
    one_ring_max_s: float = Field(
        3, ge=0, le=60, description="an unanswered call that rang at most this long is a one-ring call, s"
    )
    wangiri_warn_calls: int = Field(
        30, ge=1, le=1_000_000, description="one-ring calls in the window → alert"
    )
    wangiri_critical_calls: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="one-ring calls in the window → suspension (with the share below)",
    )
    wangiri_min_share: float = Field(
        0.9, ge=0, le=1, description="one-ring calls / attempts needed for the Wangiri suspension"
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="latest call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("warn_attempts_per_min", "critical_attempts_per_min"),
        ("wangiri_warn_calls", "wangiri_critical_calls"),
    )


def _new_cli(start_s: float) -> dict[str, Any]:
    return {
        "att": [],
        "newest_s": start_s,
        "ans": 0,
        "bill": 0.0,
        "ring1": 0,
        "sq": 0.0,
        "dst": {},
        "seq": 0,
        "ep": {"dialer": None, "wangiri": None},
    }


#: Key of an attempt: its start (a C-level getter: bisect calls it log n times).
_start = itemgetter(_START)


def _cap(p: AutodialerParams) -> int:
    """Attempts one CLI's window keeps at most: never below what a threshold counts."""
    return entry_cap(p.min_attempts, p.wangiri_critical_calls, p.critical_attempts_per_min * p.window_s / 60)


def _neighbours(key: str, step: int) -> list[str]:
    """Digit strings within ±1..±step of ``key`` (same width, zero-padded)."""
    if not key.isdigit():
        return []
    value, width = int(key), len(key)
    return [str(value + d).zfill(width) for d in range(-step, step + 1) if d and value + d >= 0]


def _near(key: str, step: int, dst: dict[str, Any]) -> list[str]:
    """The keys of ``dst`` that are in ``_neighbours(key, step)``, in no particular order.

    A CLI's window usually holds fewer callees than the 2 x step neighbours, so it is then
    cheaper to test each held key than to build every neighbour string.
    """
    if len(dst) >= 2 * step:
        return [k for k in _neighbours(key, step) if k in dst]
    if not key.isdigit():
        return []
    value, width = int(key), len(key)
    return [
        k for k in dst
        if k.isascii() and k.isdigit() and 0 < abs(int(k) - value) <= step and str(int(k)).zfill(width) == k
    ]  # fmt: skip


class AutodialerDetector(Detector[AutodialerParams]):
    """Per-CLI attempt rate, five dialer signs and one-ring counts over a sliding window.

    State: ``{"clis": {cli: {"att": [[start_s, callee_key, answered 0/1, billsec_s,
    one_ring 0/1, call_id], ...] sorted by start, "newest_s": float, "ans": int,
    "bill": float, "ring1": int, "sq": float (sum of squared start gaps), "dst":
    {callee_key: [attempts, neighbour_keys]}, "seq": int (attempts with a neighbour),
    "ep": {"dialer": level | None, "wangiri": level | None}}}, "due_s": float | None}``.
    Times are UTC epoch seconds; ``callee_key`` is the callee's digits. The attempts are
    the window :data:`ATTEMPTS` (``"att_capped"`` appears when its cap dropped some).

    Examples
    --------
    >>> from tollguard.cdr import Direction, Disposition
    >>> from tollguard.testing import make_cdr
    >>> det = AutodialerDetector()
    >>> ctx = CustomerContext("c1", params={"autodialer": AutodialerParams()})
    >>> state, out = det.initial_state(), []
    >>> for i in range(100):   # one attempt every 3 s to +390212340000, +390212340001, ...
    ...     out += det.update(state, make_cdr(
    ...         call_id=f"a{i}", direction=Direction.OUTBOUND, did="+390299990000", caller="+390299990000",
    ...         callee=f"+3902123400{i:02d}", start_s=3 * i, end_s=3 * i + 20,
    ...         disposition=Disposition.NO_ANSWER), ctx)
    >>> [(d.type.value, d.level, d.scope_value, d.evidence["attempts_per_min"]) for d in out]
    [('alert', 'warning', '+390299990000', 10.0), ('suspension', 'critical', '+390299990000', 20.0)]
    """

    name = "autodialer"
    clause = "8.2"
    params_model = AutodialerParams

    def initial_state(self) -> dict[str, Any]:
        return {"clis": {}, "due_s": None}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if cdr.direction is not Direction.OUTBOUND:
            return []
        p = self.params(ctx)
        cli = customer_number(cdr)
        start_s = cdr.start.timestamp()
        entry = state["clis"].get(cli)
        if entry is None:
            entry = state["clis"][cli] = _new_cli(start_s)
        if start_s <= entry["newest_s"] - p.window_s:
            return []  # started before this CLI's window: no longer evidence
        entry["newest_s"] = max(entry["newest_s"], start_s)
        due = entry["newest_s"] + p.window_s
        state["due_s"] = due if state["due_s"] is None else min(state["due_s"], due)
        self._evict(entry, p)
        answered = cdr.answered
        one_ring = (
            not answered and cdr.disposition is Disposition.NO_ANSWER and cdr.duration_s <= p.one_ring_max_s
        )
        callee = cdr.callee
        if callee[:1] == "+" and callee[1:].isascii() and callee[1:].isdigit():
            digits = callee[1:]  # E.164: the common case, same digits as below
        else:
            digits = "".join(ch for ch in callee if ch.isdigit())
        key = digits or f"~{cdr.callee}"
        self._insert(
            entry,
            [start_s, key, int(answered), cdr.billsec_s if answered else 0.0, int(one_ring), cdr.call_id],
            p,
        )
        return self._decide(cli, entry, p, cdr.end.timestamp(), start_s)

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        due = state["due_s"]
        if due is None or now_s < due:
            return []
        p = self.params(ctx)
        clis = state["clis"]
        for cli in [c for c, e in clis.items() if e["newest_s"] + p.window_s <= now_s]:
            del clis[cli]  # idle for a whole window: nothing left in it can be evidence
        state["due_s"] = min((e["newest_s"] + p.window_s for e in clis.values()), default=None)
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        if scope_kind is ScopeKind.CLI:
            state["clis"].pop(scope_value, None)

    # -- window bookkeeping (running sums) -------------------------------------------------

    @staticmethod
    def _insert(entry: dict[str, Any], attempt: list[Any], p: AutodialerParams) -> None:
        att, t = entry["att"], attempt[_START]
        i = bisect.bisect_right(att, t, key=_start)
        prev = att[i - 1][_START] if i > 0 else None
        nxt = att[i][_START] if i < len(att) else None
        if prev is not None and nxt is not None:
            entry["sq"] -= (nxt - prev) ** 2
        if prev is not None:
            entry["sq"] += (t - prev) ** 2
        if nxt is not None:
            entry["sq"] += (nxt - t) ** 2
        dropped = ATTEMPTS.add(entry, attempt, max_entries=_cap(p))
        dst, key = entry["dst"], attempt[_KEY]
        slot = dst.get(key)
        if slot is None:
            near = _near(key, p.sequential_max_step, dst)
            dst[key] = slot = [0, len(near)]
            for k in near:
                other = dst[k]
                if other[1] == 0:
                    entry["seq"] += other[0]  # its attempts now have a neighbour
                other[1] += 1
        slot[0] += 1
        if slot[1]:
            entry["seq"] += 1
        if dropped:
            AutodialerDetector._forget(entry, dropped, p)

    @staticmethod
    def _evict(entry: dict[str, Any], p: AutodialerParams) -> None:
        gone = ATTEMPTS.expire(entry, now_s=entry["newest_s"], window_s=p.window_s)
        if gone:
            AutodialerDetector._forget(entry, gone, p)

    @staticmethod
    def _forget(entry: dict[str, Any], gone: list[list[Any]], p: AutodialerParams) -> None:
        """Take the oldest attempts ``gone`` (already out of ``att``) out of the gap sum and the neighbours."""
        att, dst = entry["att"], entry["dst"]
        for i, old in enumerate(gone):
            nxt = gone[i + 1] if i + 1 < len(gone) else (att[0] if att else None)
            if nxt is not None:
                entry["sq"] -= (nxt[_START] - old[_START]) ** 2
            slot = dst[old[_KEY]]
            slot[0] -= 1
            if slot[1]:
                entry["seq"] -= 1
            if slot[0] == 0:
                del dst[old[_KEY]]
                for k in _near(old[_KEY], p.sequential_max_step, dst):
                    other = dst[k]
                    other[1] -= 1
                    if other[1] == 0:
                        entry["seq"] -= other[0]
        if len(att) < 2:
            entry["sq"] = 0.0  # no gap left: drop accumulated rounding

    # -- deciding --------------------------------------------------------------------------

    @staticmethod
    def _metrics(entry: dict[str, Any], p: AutodialerParams) -> dict[str, Any]:
        att = entry["att"]
        n = len(att)
        ans = entry["ans"]
        acd = entry["bill"] / ans if ans else None
        cv = None
        if n >= 3:
            mean = (att[-1][_START] - att[0][_START]) / (n - 1)
            var = max(entry["sq"] / (n - 1) - mean * mean, 0.0)
            cv = math.sqrt(var) / mean if mean > 0 else 0.0
        values = {
            "distinct_share": len(entry["dst"]) / n,
            "sequential_share": entry["seq"] / n,
            "asr": ans / n,
            "acd_s": acd,
            "gap_cv": cv,
        }
        signs = {
            "distinct": values["distinct_share"] >= p.min_distinct_share,
            "sequential": values["sequential_share"] >= p.min_sequential_share,
            "low_asr": values["asr"] <= p.max_asr,
            "short_acd": acd is not None and acd <= p.max_acd_s,
            "regular_gaps": cv is not None and cv <= p.max_gap_cv,
        }
        return {"attempts": n, "attempts_per_min": n * 60.0 / p.window_s, "values": values, "signs": signs}

    def _decide(
        self, cli: str, entry: dict[str, Any], p: AutodialerParams, end_s: float, start_s: float
    ) -> list[Decision]:
        ep = entry["ep"]
        n = len(entry["att"])
        if n < p.min_attempts:
            ep["dialer"] = None
        if entry["ring1"] == 0:
            ep["wangiri"] = None
        decisions: list[Decision] = []
        if n >= p.min_attempts:
            m = self._metrics(entry, p)
            score, rate = sum(m["signs"].values()), m["attempts_per_min"]
            level: AlertLevel | None = None
            if rate >= p.critical_attempts_per_min and score >= p.critical_signs:
                level = "critical"
            elif rate >= p.warn_attempts_per_min and score >= p.warn_signs:
                level = "warning"
            if level is not None and _LEVELS[level] > _LEVELS[ep["dialer"]]:
                ep["dialer"] = level
                decisions.append(self._dialer_decision(cli, entry, m, score, level, p, end_s, start_s))
        ring1 = entry["ring1"]
        ring_level: AlertLevel | None = None
        if ring1 >= p.wangiri_critical_calls and ring1 / n >= p.wangiri_min_share:
            ring_level = "critical"
        elif ring1 >= p.wangiri_warn_calls:
            ring_level = "warning"
        if ring_level is not None and _LEVELS[ring_level] > _LEVELS[ep["wangiri"]]:
            ep["wangiri"] = ring_level
            decisions.append(self._wangiri_decision(cli, entry, ring_level, p, end_s, start_s))
        return decisions

    @staticmethod
    def _common(entry: dict[str, Any], p: AutodialerParams) -> dict[str, Any]:
        att = entry["att"]
        common = {
            "attempts": len(att),
            "window_s": p.window_s,
            "window_first_start": iso(att[0][_START]),
            "window_last_start": iso(att[-1][_START]),
            "sample_call_ids": sample_ids(att, p.sample_call_ids, _ID),
        }
        if ATTEMPTS.capped(entry):
            common["capped_calls"] = ATTEMPTS.capped(entry)
        return common

    def _dialer_decision(
        self,
        cli: str,
        entry: dict[str, Any],
        m: dict[str, Any],
        score: int,
        level: AlertLevel,
        p: AutodialerParams,
        end_s: float,
        start_s: float,
    ) -> Decision:
        v = m["values"]
        rate = round(m["attempts_per_min"], 2)
        held = [s for s in _SIGNS if m["signs"][s]]
        critical = level == "critical"
        threshold = p.critical_attempts_per_min if critical else p.warn_attempts_per_min
        figures = {
            "distinct": f"{v['distinct_share']:.0%} distinct destinations",
            "sequential": f"{v['sequential_share']:.0%} sequential numbers",
            "low_asr": f"ASR {v['asr']:.0%}",
            "short_acd": f"ACD {v['acd_s']:.0f} s" if v["acd_s"] is not None else "",
            "regular_gaps": f"gap CV {v['gap_cv']:.2f}" if v["gap_cv"] is not None else "",
        }
        reason = (
            f"CLI {cli} placed {m['attempts']} call attempts in {p.window_s / 60:g} min ({rate:g}/min, "
            f"{level} at {threshold:g}/min) with {score} of 5 autodialer signs ("
            + ", ".join(figures[s] for s in held)
            + "): an automatically generated outbound campaign (clause 8.2)."
        )
        evidence = {
            **AutodialerDetector._common(entry, p),
            "kind": "autodialer",
            "attempts_per_min": rate,
            "distinct_share": round(v["distinct_share"], 4),
            "sequential_share": round(v["sequential_share"], 4),
            "asr": round(v["asr"], 4),
            "acd_s": None if v["acd_s"] is None else round(v["acd_s"], 1),
            "gap_cv": None if v["gap_cv"] is None else round(v["gap_cv"], 4),
            "answered": entry["ans"],
            "signs": held,
            "score": score,
            "thresholds": {
                "min_attempts": p.min_attempts,
                "warn_attempts_per_min": p.warn_attempts_per_min,
                "critical_attempts_per_min": p.critical_attempts_per_min,
                "warn_signs": p.warn_signs,
                "critical_signs": p.critical_signs,
                "min_distinct_share": p.min_distinct_share,
                "sequential_max_step": p.sequential_max_step,
                "min_sequential_share": p.min_sequential_share,
                "max_asr": p.max_asr,
                "max_acd_s": p.max_acd_s,
                "max_gap_cv": p.max_gap_cv,
            },
        }
        return level_decision(
            level,
            ScopeKind.CLI,
            cli,
            episode=f"autodialer@{iso(start_s)}",
            occurred_at_s=end_s,
            reason=reason,
            evidence=evidence,
            clause="8.2",
        )

    def _wangiri_decision(
        self, cli: str, entry: dict[str, Any], level: AlertLevel, p: AutodialerParams, end_s: float, start_s: float
    ) -> Decision:
        n, ring1 = len(entry["att"]), entry["ring1"]
        critical = level == "critical"
        threshold = p.wangiri_critical_calls if critical else p.wangiri_warn_calls
        reason = (
            f"CLI {cli} made {ring1} one-ring calls (unanswered, rang <= {p.one_ring_max_s:g} s) "
            f"of {n} attempts ({ring1 / n:.0%}) in {p.window_s / 60:g} min, {level} at {threshold}: "
            f"Wangiri call-back bait (clause 8.2)."
        )
        evidence = {
            **AutodialerDetector._common(entry, p),
            "kind": "wangiri",
            "one_ring_calls": ring1,
            "one_ring_share": round(ring1 / n, 4),
            "attempts_per_min": round(n * 60.0 / p.window_s, 2),
            "thresholds": {
                "one_ring_max_s": p.one_ring_max_s,
                "wangiri_warn_calls": p.wangiri_warn_calls,
                "wangiri_critical_calls": p.wangiri_critical_calls,
                "wangiri_min_share": p.wangiri_min_share,
            },
        }
        return level_decision(
            level,
            ScopeKind.CLI,
            cli,
            episode=f"wangiri@{iso(start_s)}",
            occurred_at_s=end_s,
            reason=reason,
            evidence=evidence,
            clause="8.2",
        )
