"""``bandwidth``: the customer's link gives less than 60 kbps per simultaneous call (clause 3.1).

Clause 3.1 requires the customer's Internet link to give at least 60 kbit/s per
simultaneous VoIP call; the SLA does not cover calls on a slower link. This detector
only ever returns ``compliance_notice`` decisions (level ``notice``, scope
``account``): it informs the NOC, it never suspends. Two independent checks:

a. **Measured media.** For an answered call with RTP byte counters, the media ran
   from ``media_start`` (early media included), else from ``answer``, to ``end``; the
   throughput of each direction is ``(bytes + 28 * packets) * 8 / media_s / 1000``
   kbit/s at the IP layer (the switch counts RTP header + payload; 20 IPv4 + 8 UDP
   bytes a packet are added), or ``bytes * 8 / media_s / 1000`` plus the headers of
   ``1000 / ptime_ms`` packets a second when the packet count is missing. Dividing by
   billsec instead would overstate the rate of a call with early media. A call is
   *bad* when its slower measured direction is below both ``min_codec_ratio`` times
   what its codec needs (:mod:`detectors.codecs`) and ``min_kbps_per_call``, and it
   lost ``>= min_loss_ratio`` of its packets or scored MOS ``<= max_mos``: a low rate
   alone is normal for a low-bitrate codec (G.729 uses 24 kbit/s). A codec the table
   does not know is judged by its own packets (bytes a packet at ``ptime_ms``); with no
   packet count either, the call is not judged. ``>= min_bad_calls`` bad calls within
   ``window_s`` that are ``>= min_bad_share`` of the judged calls → one notice per
   episode (it ends when the window holds no bad call).
b. **Declared link.** Where the rules give ``link_kbps``, the exact peak of the
   customer's simultaneous calls (media intervals of all its calls, via
   :mod:`detectors.concurrency`) is tracked; ``link_kbps / peak < min_kbps_per_call``
   → one notice per episode (it ends after ``window_s`` without an overload).
   Exactly 60 kbit/s per call complies.

Outbound calls to emergency and toll-free numbers are judged by neither check
(:mod:`detectors.never_evidence`): they are never evidence. A notice's ``estimated_cost``
(``currency``) is what its outbound calls cost where the rules' rate table prices them (the
bad calls; the calls in progress at the link's peak), null when none is priced.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from typing import Any

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, iso
from detectors.codecs import IP_UDP_OVERHEAD_BYTES, lookup
from detectors.concurrency import add_call, prune_calls
from detectors.never_evidence import never_evidence
from detectors.window import Window, entry_cap
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import EventType, ScopeKind
from tollguard.numbers import classify

_END, _KBPS, _NEED, _CODEC, _ID, _LOSS, _MOS, _COST = range(8)

#: Check a's two windows of judged calls (by end): the fine ones (their end times) and the bad ones.
OK_CALLS = Window("ok", time=None)
BAD_CALLS = Window("bad", time=_END, on_empty={"ep": None})


class BandwidthParams(DetectorParams):
    """Thresholds of ``bandwidth`` (kbps = kbit/s at the IP layer, per direction; times in seconds).

    Notes
    -----
    Direction of each threshold: a call is bad below ``min_kbps_per_call`` and below
    ``min_codec_ratio`` x its codec's need (strict), with loss at or above
    ``min_loss_ratio`` or MOS at or below ``max_mos``; a notice needs at least
    ``min_bad_calls`` and at least ``min_bad_share``. Sources: 60 kbps per call is
    clause 3.1; codec needs are ITU-T G.711/G.722/G.729 payload rates plus RTP (RFC 3550),
    UDP and IPv4 headers (:mod:`detectors.codecs`); 2 % loss is where G.711 without loss
    concealment is clearly impaired in the E-model (ITU-T G.113 Appendix I, G.107); MOS 3.5
    is below the E-model's "many users dissatisfied" boundary (R 70, MOS ~3.6, ITU-T
    G.107/G.109); ``min_media_s``, ``min_codec_ratio`` (10 % counter and timing slack),
    ``min_bad_calls`` and ``min_bad_share`` are the operator's defaults.
    """

    min_kbps_per_call: float = Field(
        60,
        gt=0,
        le=10_000,
        description="link kbit/s each simultaneous call must get (clause 3.1); below fires",
    )
    min_codec_ratio: float = Field(
        0.9, gt=0, le=1, description="a call is short of bandwidth below this share of its codec's need"
    )
    min_loss_ratio: float = Field(
        0.02,
        ge=0,
        le=1,
        description="lost / expected packets at or above this is impaired (ITU-T G.113 App. I)",
    )
    max_mos: float = Field(
        3.5,
        ge=1,
        le=5,
        description="MOS at or below this is impaired (ITU-T G.107/G.109: users dissatisfied)",
    )
    min_media_s: float = Field(
        10,
        ge=0,
        le=3_600,
        description="calls with less media than this are not judged (counters too noisy), s",
    )
    ptime_ms: float = Field(
        20,
        ge=5,
        le=200,
        description="packetisation interval assumed for codec needs and missing packet counts",
    )
    window_s: float = Field(3600, ge=60, le=7 * 86_400, description="window of judged calls (by end time), s")
    min_bad_calls: int = Field(3, ge=1, le=100_000, description="bad calls in the window needed for a notice")
    min_bad_share: float = Field(0.2, ge=0, le=1, description="bad calls / judged calls needed for a notice")
    max_call_s: float = Field(
        7200,
        ge=60,
        le=86_400,
        description="longest call counted for the declared-link peak (pruning horizon), s",
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="call ids kept as evidence")


def _kbps(nbytes: float | None, packets: float | None, media_s: float, ptime_ms: float) -> float | None:
    """IP-layer kbit/s of one direction, or None when it has no (or zero) counters."""
    if not nbytes:
        return None
    if packets:
        return (nbytes + IP_UDP_OVERHEAD_BYTES * packets) * 8.0 / media_s / 1000.0
    return nbytes * 8.0 / media_s / 1000.0 + IP_UDP_OVERHEAD_BYTES * 8.0 / ptime_ms


def measure(cdr: CallDetailRecord, p: BandwidthParams) -> dict[str, Any] | None:
    """Per-call media figures, or ``None`` when the call cannot be judged.

    Returns ``{"media_s", "kbps" (slower direction, IP layer), "need_kbps", "codec",
    "loss" (lost / expected, or None), "mos"}``.

    >>> from tollguard.testing import make_cdr
    >>> c = make_cdr(start_s=0, answer_s=30, end_s=60, codec="PCMA", rtp_in_bytes=273400,
    ...              rtp_in_packets=950, rtp_lost_packets=50)
    >>> m = measure(c, BandwidthParams())
    >>> m["media_s"], round(m["kbps"], 1), m["need_kbps"], m["loss"]
    (30.0, 80.0, 80.0, 0.05)
    """
    if not cdr.answered or (cdr.rtp_in_bytes is None and cdr.rtp_out_bytes is None):
        return None
    end_s = cdr.end.timestamp()
    if cdr.media_start is not None:
        media_from = cdr.media_start.timestamp()
    elif cdr.answer is not None:
        media_from = cdr.answer.timestamp()
    else:
        media_from = end_s - cdr.billsec_s
    media_s = end_s - media_from
    if media_s < p.min_media_s or media_s <= 0:
        return None
    rates = [
        r
        for r in (
            _kbps(cdr.rtp_in_bytes, cdr.rtp_in_packets, media_s, p.ptime_ms),
            _kbps(cdr.rtp_out_bytes, cdr.rtp_out_packets, media_s, p.ptime_ms),
        )
        if r is not None
    ]
    if not rates:
        return None
    codec = lookup(cdr.codec)
    if codec is not None:
        need, name = codec.ip_kbps(p.ptime_ms), cdr.codec
    else:
        pairs = ((cdr.rtp_in_bytes, cdr.rtp_in_packets), (cdr.rtp_out_bytes, cdr.rtp_out_packets))
        sizes = [b / n for b, n in pairs if b and n]
        if not sizes:
            return None
        need = round((max(sizes) + IP_UDP_OVERHEAD_BYTES) * 8.0 / p.ptime_ms, 1)
        name = f"{cdr.codec or 'unknown'} ({max(sizes):.0f}-byte packets)"
    loss = None
    if cdr.rtp_lost_packets is not None:
        expected = (
            cdr.rtp_lost_packets + cdr.rtp_in_packets
            if cdr.rtp_in_packets is not None
            else media_s * 1000.0 / p.ptime_ms
        )
        loss = cdr.rtp_lost_packets / expected if expected > 0 else None
    return {
        "media_s": media_s,
        "kbps": min(rates),
        "need_kbps": need,
        "codec": name,
        "loss": loss,
        "mos": cdr.mos,
    }


def _cost(cdr: CallDetailRecord, ctx: CustomerContext) -> float | None:
    """What an outbound call cost where the rate table prices its destination, else None."""
    if cdr.direction is not Direction.OUTBOUND:
        return None
    number = classify(cdr.callee, ctx.country).e164
    return ctx.rates.cost(number, cdr.billsec_s) if number else None


def _total(costs: Any) -> float | None:
    """The sum of the priced costs, None when none is priced."""
    priced = [c for c in costs if c is not None]
    return round(sum(priced), 2) if priced else None


def _is_bad(m: dict[str, Any], p: BandwidthParams) -> bool:
    slow = m["kbps"] < m["need_kbps"] * p.min_codec_ratio and m["kbps"] < p.min_kbps_per_call
    impaired = (m["loss"] is not None and m["loss"] >= p.min_loss_ratio) or (
        m["mos"] is not None and m["mos"] <= p.max_mos
    )
    return slow and impaired


class BandwidthDetector(Detector[BandwidthParams]):
    """Clause 3.1 compliance from RTP counters and from the declared link, notices only.

    State: ``{"ok": [end_s, ...] (judged calls that were fine, in the window),
    "bad": [[end_s, kbps, need_kbps, codec, call_id, loss, mos, cost], ...], "ep": iso | None,
    "calls": [[media_from_s, end_s], ...] sorted by end (only with ``link_kbps``),
    "ids": [[end_s, media_from_s, call_id, cost], ...] (the latest ``4 * sample_call_ids``
    calls, for evidence), "link": {"ep": iso, "last_s": float,
    "peak": int} | None}``. Times are UTC epoch seconds. ``ok`` and ``bad`` are the windows
    :data:`OK_CALLS` and :data:`BAD_CALLS` (``"ok_capped"`` / ``"bad_capped"`` appear when
    their cap dropped calls).

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> det = BandwidthDetector()
    >>> ctx = CustomerContext("c1", params={"bandwidth": BandwidthParams()}, link_kbps=1000)
    >>> state, out = det.initial_state(), []
    >>> for i in range(20):   # 20 overlapping calls on a 1000 kbit/s link (16 fit at 60 kbit/s)
    ...     out += det.update(state, make_cdr(call_id=f"c{i}", start_s=i, end_s=600 + i), ctx)
    >>> # one notice, when the 17th simultaneous call proved the breach (1000 / 17 = 58.8 kbit/s)
    >>> [(d.type.value, d.evidence["peak_calls"], d.evidence["kbps_per_call"]) for d in out]
    [('compliance_notice', 17, 58.8)]
    """

    name = "bandwidth"
    clause = "3.1"
    params_model = BandwidthParams

    def initial_state(self) -> dict[str, Any]:
        return {"ok": [], "bad": [], "ep": None, "calls": [], "ids": [], "link": None}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if cdr.rtp_in_bytes is None and cdr.rtp_out_bytes is None and ctx.link_kbps is None:
            return []
        if never_evidence(cdr, ctx.country):
            return []
        p = self.params(ctx)
        end_s = cdr.end.timestamp()
        decisions: list[Decision] = []
        if ctx.link_kbps is not None:
            decision = self._link(state, cdr, ctx, ctx.link_kbps, p, end_s)
            if decision is not None:
                decisions.append(decision)
        m = measure(cdr, p)
        if m is not None:
            self._expire(state, end_s, p)
            if _is_bad(m, p):
                bad_call = [end_s, m["kbps"], m["need_kbps"], m["codec"], cdr.call_id, m["loss"], m["mos"],
                            _cost(cdr, ctx)]
                BAD_CALLS.add(state, bad_call, max_entries=entry_cap(p.min_bad_calls))
                bad, judged = len(state["bad"]), len(state["bad"]) + len(state["ok"])
                if state["ep"] is None and bad >= p.min_bad_calls and bad / judged >= p.min_bad_share:
                    state["ep"] = iso(state["bad"][0][_END])
                    decisions.append(self._calls_decision(state, ctx, p, end_s))
            else:
                OK_CALLS.add(state, end_s, max_entries=entry_cap())
        return decisions

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        p = self.params(ctx)
        self._expire(state, now_s, p)
        if state["calls"] and state["calls"][0][1] < now_s - p.max_call_s:
            self._prune_calls(state, now_s - p.max_call_s)
        link = state["link"]
        if link is not None and link["last_s"] < now_s - p.window_s:
            state["link"] = None
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        if scope_kind is ScopeKind.ACCOUNT:
            state.update(self.initial_state())

    # -- check a: measured calls -----------------------------------------------------------

    @staticmethod
    def _expire(state: dict[str, Any], now_s: float, p: BandwidthParams) -> None:
        OK_CALLS.expire(state, now_s=now_s, window_s=p.window_s)
        BAD_CALLS.expire(state, now_s=now_s, window_s=p.window_s)

    @staticmethod
    def _calls_decision(
        state: dict[str, Any], ctx: CustomerContext, p: BandwidthParams, end_s: float
    ) -> Decision:
        bad = state["bad"]
        n_bad, judged = len(bad), len(bad) + len(state["ok"])
        codec = Counter(b[_CODEC] for b in bad).most_common(1)[0][0]
        of_codec = [b for b in bad if b[_CODEC] == codec]
        median = round(statistics.median(b[_KBPS] for b in of_codec), 1)
        need = of_codec[0][_NEED]
        losses = [b[_LOSS] for b in bad if b[_LOSS] is not None]
        moses = [b[_MOS] for b in bad if b[_MOS] is not None]
        capped = OK_CALLS.capped(state) + BAD_CALLS.capped(state)
        reason = (
            f"Customer {ctx.customer_id}: {n_bad} of {judged} calls with media in the last "
            f"{p.window_s / 60:g} min got a median {median:.1f} kbps per direction on {codec}, which needs "
            f"{need:.1f} kbps, with packet loss or poor MOS: the link is below clause 3.1's "
            f"{p.min_kbps_per_call:g} kbps per call."
        )
        return Decision(
            type=EventType.COMPLIANCE_NOTICE,
            level="notice",
            scope_kind=ScopeKind.ACCOUNT,
            scope_value=ctx.customer_id,
            episode=f"calls@{state['ep']}",
            check="measured_calls",
            occurred_at_s=end_s,
            reason=reason,
            evidence={
                "check": "measured_calls",
                "codec": codec,
                "measured_kbps": median,
                "needed_kbps": need,
                "bad_calls": n_bad,
                "judged_calls": judged,
                "bad_share": round(n_bad / judged, 4),
                "median_loss_ratio": round(statistics.median(losses), 4) if losses else None,
                "median_mos": round(statistics.median(moses), 2) if moses else None,
                "window_s": p.window_s,
                "first_bad_at": iso(bad[0][_END]),
                "thresholds": {
                    "min_kbps_per_call": p.min_kbps_per_call,
                    "min_codec_ratio": p.min_codec_ratio,
                    "min_loss_ratio": p.min_loss_ratio,
                    "max_mos": p.max_mos,
                    "min_media_s": p.min_media_s,
                    "min_bad_calls": p.min_bad_calls,
                    "min_bad_share": p.min_bad_share,
                },
                "sample_call_ids": [b[_ID] for b in bad[-p.sample_call_ids :]] if p.sample_call_ids else [],
                "estimated_cost": _total(b[_COST] if len(b) > _COST else None for b in bad),
                "currency": ctx.rates.currency,
                **({"capped_calls": capped} if capped else {}),
            },
        )

    # -- check b: declared link ------------------------------------------------------------

    @staticmethod
    def _prune_calls(state: dict[str, Any], cut_s: float) -> None:
        prune_calls(state["calls"], cut_s)
        ids = state["ids"]
        if ids and ids[0][0] < cut_s:
            del ids[: bisect.bisect_left(ids, cut_s, key=lambda x: x[0])]

    def _link(
        self,
        state: dict[str, Any],
        cdr: CallDetailRecord,
        ctx: CustomerContext,
        link_kbps: float,
        p: BandwidthParams,
        end_s: float,
    ) -> Decision | None:
        if cdr.media_start is not None:
            media_from = cdr.media_start.timestamp()  # early media uses the link too
        elif cdr.answered:
            media_from = cdr.answer.timestamp() if cdr.answer is not None else end_s - cdr.billsec_s
        else:
            return None  # rang, never carried media
        self._prune_calls(state, end_s - p.max_call_s)
        profile = add_call(state["calls"], media_from, end_s)
        ids = state["ids"]
        bisect.insort(ids, [end_s, media_from, cdr.call_id, _cost(cdr, ctx)], key=lambda x: x[0])
        if len(ids) > 4 * p.sample_call_ids:
            del ids[: len(ids) - 4 * p.sample_call_ids]
        if not profile:
            return None
        peak_at, peak = max(profile, key=lambda point: (point[1], -point[0]))
        per_call = link_kbps / peak
        if per_call >= p.min_kbps_per_call:
            return None
        link = state["link"]
        if link is not None and peak_at - link["last_s"] <= p.window_s:
            link["last_s"] = max(link["last_s"], peak_at)
            link["peak"] = max(link["peak"], peak)
            return None
        state["link"] = {"ep": iso(peak_at), "last_s": peak_at, "peak": peak}
        at_peak = [x for x in state["ids"] if x[1] <= peak_at < x[0]]
        overlapping = [x[2] for x in at_peak]
        supported = math.floor(link_kbps / p.min_kbps_per_call)
        return Decision(
            type=EventType.COMPLIANCE_NOTICE,
            level="notice",
            scope_kind=ScopeKind.ACCOUNT,
            scope_value=cdr.customer_id,
            episode=f"link@{iso(peak_at)}",
            check="declared_link",
            occurred_at_s=end_s,
            reason=(
                f"Customer {cdr.customer_id} had {peak} simultaneous calls at {iso(peak_at)} on a declared "
                f"{link_kbps:g} kbps link: {per_call:.1f} kbps per call, below clause 3.1's "
                f"{p.min_kbps_per_call:g} kbps (the link supports {supported} calls)."
            ),
            evidence={
                "check": "declared_link",
                "link_kbps": link_kbps,
                "peak_calls": peak,
                "peak_at": iso(peak_at),
                "kbps_per_call": round(per_call, 1),
                "needed_kbps_per_call": p.min_kbps_per_call,
                "supported_calls": supported,
                "max_call_s": p.max_call_s,
                "sample_call_ids": overlapping[-p.sample_call_ids :] if p.sample_call_ids else [],
                "estimated_cost": _total(x[3] if len(x) > 3 else None for x in at_peak),
                "currency": ctx.rates.currency,
            },
        )
