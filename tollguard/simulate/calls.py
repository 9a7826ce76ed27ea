"""Call material: the internal call tuple, media counters, per-customer precomputed state, call builders.

A call is a plain tuple (see ``_Call``) until :mod:`tollguard.simulate.records` turns it into a
:class:`~tollguard.cdr.CallDetailRecord`; benign traffic and episodes both build them.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from typing import Any

from tollguard.cdr import Direction, Disposition

from .pools import _ANY, _INTL_WEIGHTS, _dial, _Num, _parse_valid, _pool
from .profiles import CustomerProfile

# --------------------------------------------------------------------------- call material

# Internal call tuple:
# (start_ms, answer_ms|None, end_ms, customer_id, direction, caller, callee, caller_raw, callee_raw,
#  did, disposition, cause, source_ip, user_agent, codec, media|None, label_index)
# media = (in_bytes, out_bytes, in_packets, out_packets, lost_packets, mos)
_Call = tuple[Any, ...]

_ANS = Disposition.ANSWERED
_NOANS = Disposition.NO_ANSWER
_BUSY = Disposition.BUSY
_FAILED = Disposition.FAILED
_CONG = Disposition.CONGESTION
_IN = Direction.INBOUND
_OUT = Direction.OUTBOUND
_INT = Direction.INTERNAL

_RTP_HEADER_BYTES = 12
_PACKETS_PER_S = 50  # 20 ms packetisation
_PAYLOAD_BYTES = {"PCMA": 160, "PCMU": 160, "G711A": 160, "G711U": 160, "G729": 20}


def _healthy_media(rng: random.Random, codec: str, billsec_ms: int) -> tuple[float, ...]:
    payload = _PAYLOAD_BYTES.get(codec, 160)
    pkt = payload + _RTP_HEADER_BYTES
    sent = billsec_ms * _PACKETS_PER_S // 1000
    lost = int(sent * rng.random() * 0.005)
    recv = sent - lost
    if payload == 20:
        mos = round(3.9 + rng.random() * 0.2, 2)
    else:
        mos = round(4.1 + rng.random() * 0.3, 2)
    return (float(recv * pkt), float(sent * pkt), float(recv), float(sent), float(lost), mos)


def _degraded_media(
    rng: random.Random, codec: str, billsec_ms: int, kbps: float, mos_min: float, mos_max: float
) -> tuple[float, ...]:
    payload = _PAYLOAD_BYTES.get(codec, 160)
    pkt = payload + _RTP_HEADER_BYTES
    sent = billsec_ms * _PACKETS_PER_S // 1000
    got_kbps = kbps * rng.uniform(0.9, 1.0)
    recv = min(sent, int(got_kbps * 1000 / 8 / pkt * billsec_ms / 1000))
    lost = sent - recv
    mos = round(rng.uniform(mos_min, mos_max), 2)
    return (float(recv * pkt), float(sent * pkt), float(recv), float(sent), float(lost), mos)


class _Cust:
    """Per-customer material precomputed for the hot loop."""

    __slots__ = (
        "asr_in",
        "asr_out",
        "cid",
        "cli_cum",
        "codec",
        "did_cum",
        "did_nat",
        "dids",
        "ext_lo",
        "ext_n",
        "index",
        "intl_cum",
        "intl_pools",
        "ip",
        "mu",
        "nat_fixed",
        "nat_mobile",
        "out_per_hour",
        "p",
        "p_in",
        "p_int",
        "toll_free",
        "ua",
    )

    def __init__(self, p: CustomerProfile, index: int) -> None:
        self.p = p
        self.index = index
        self.cid = p.customer_id
        self.dids = p.dids
        self.did_nat = tuple(_parse_valid(d, _ANY, None).national for d in p.dids)  # type: ignore[union-attr]
        n = len(p.dids)
        # the main number carries a share min(1, 1.2 / n) of the calls (0.6 with two DIDs, 0.2 with
        # six), the other DIDs (direct dial-in numbers) share the rest evenly
        main = min(1.0, 1.2 / n)
        self.cli_cum = _cum([main] + [(1 - main) / (n - 1)] * (n - 1)) if n > 1 else [1.0]
        self.did_cum = self.cli_cum
        region = p.country
        self.nat_fixed = _pool(region, "fixed")
        self.nat_mobile = _pool(region, "mobile")
        self.toll_free = _pool(region, "toll_free")
        intl = [(r, w) for r, w in _INTL_WEIGHTS if r != region]
        self.intl_pools = tuple((_pool(r, "fixed"), _pool(r, "mobile")) for r, _ in intl)
        self.intl_cum = _cum([w for _, w in intl])
        self.ext_lo = 200
        self.ext_n = max(2, p.extensions)
        self.p_in = p.inbound_share
        self.p_int = p.inbound_share + p.internal_share
        self.asr_out = p.answer_ratio
        self.asr_in = min(0.95, p.answer_ratio + 0.05)
        sigma = 0.9
        self.mu = math.log(p.mean_talk_s) - sigma * sigma / 2
        self.codec = p.codec
        self.ip = p.source_ip
        self.ua = p.user_agent
        self.out_per_hour = p.calls_per_hour_peak * max(0.0, 1.0 - p.inbound_share - p.internal_share)


def _cum(weights: list[float]) -> list[float]:
    total = sum(weights)
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cum: list[float], u: float) -> int:
    i = bisect_right(cum, u)
    return i if i < len(cum) else len(cum) - 1


def _out_call(
    c: _Cust,
    rng: random.Random,
    start_ms: int,
    cli_index: int,
    num: _Num | tuple[str, str],
    answered: bool,
    ring_s: float,
    talk_s: float,
    label: int,
    *,
    disp: Disposition = _NOANS,
    cause: int = 19,
    ip: str | None = None,
    ua: str | None = None,
    codec: str | None = None,
    media: tuple[float, ...] | None = None,
) -> _Call:
    if isinstance(num, _Num):
        callee, callee_raw = num.e164, _dial(num, c.p.country)
    else:
        callee, callee_raw = num
    cli = c.dids[cli_index]
    codec = codec or c.codec
    ring_ms = int(ring_s * 1000)
    if answered:
        talk_ms = int(talk_s * 1000)
        answer = start_ms + ring_ms
        if media is None:
            media = _healthy_media(rng, codec, talk_ms)
        return (
            start_ms,
            answer,
            answer + talk_ms,
            c.cid,
            _OUT,
            cli,
            callee,
            c.did_nat[cli_index],
            callee_raw,
            cli,
            _ANS,
            16,
            ip or c.ip,
            ua or c.ua,
            codec,
            media,
            label,
        )
    return (
        start_ms,
        None,
        start_ms + ring_ms,
        c.cid,
        _OUT,
        cli,
        callee,
        c.did_nat[cli_index],
        callee_raw,
        cli,
        disp,
        cause,
        ip or c.ip,
        ua or c.ua,
        codec,
        None,
        label,
    )


def _in_call(
    c: _Cust,
    rng: random.Random,
    start_ms: int,
    did: str,
    did_raw: str,
    num: _Num,
    ring_s: float,
    talk_s: float,
    label: int,
    answered: bool = True,
    media: tuple[float, ...] | None = None,
    codec: str | None = None,
) -> _Call:
    codec = codec or c.codec
    ring_ms = int(ring_s * 1000)
    caller_raw = _dial(num, c.p.country)
    if answered:
        talk_ms = int(talk_s * 1000)
        answer = start_ms + ring_ms
        if media is None:
            media = _healthy_media(rng, codec, talk_ms)
        return (
            start_ms,
            answer,
            answer + talk_ms,
            c.cid,
            _IN,
            num.e164,
            did,
            caller_raw,
            did_raw,
            did,
            _ANS,
            16,
            c.ip,
            c.ua,
            codec,
            media,
            label,
        )
    return (
        start_ms,
        None,
        start_ms + ring_ms,
        c.cid,
        _IN,
        num.e164,
        did,
        caller_raw,
        did_raw,
        did,
        _NOANS,
        19,
        c.ip,
        c.ua,
        codec,
        None,
        label,
    )
