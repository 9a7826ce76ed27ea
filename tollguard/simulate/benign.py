"""Benign traffic: customers' local time, the daily activity curve, and one ordinary call."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from .calls import _ANS, _BUSY, _CONG, _FAILED, _IN, _INT, _NOANS, _OUT, _Call, _Cust, _healthy_media, _pick
from .pools import _dial

# --------------------------------------------------------------------------- local time


def _last_sunday_utc_1am(year: int, month: int) -> datetime:
    # last day of month
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    last = nxt - timedelta(days=1)
    last -= timedelta(days=(last.weekday() - 6) % 7)
    return last.replace(hour=1)


@lru_cache(maxsize=64)
def _dst_bounds(year: int) -> tuple[datetime, datetime]:
    return _last_sunday_utc_1am(year, 3), _last_sunday_utc_1am(year, 10)


def _local(utc: datetime, std_offset_min: int) -> datetime:
    lo, hi = _dst_bounds(utc.year)
    offset = std_offset_min + (60 if lo <= utc < hi else 0)
    return utc + timedelta(minutes=offset)


def _activity(local: datetime, start_h: int, end_h: int) -> float:
    """Share of the peak call rate at a local time (weekday business hours = 1)."""
    h = local.hour
    if local.weekday() >= 5:
        return 0.06 if 9 <= h < 18 else 0.015
    if start_h <= h < end_h:
        return 0.6 if h == 13 else 1.0
    if h == start_h - 1:
        return 0.25
    if end_h <= h < end_h + 2:
        return 0.15
    if 6 <= h:
        return 0.05
    return 0.015


# --------------------------------------------------------------------------- benign traffic

_EMERGENCY = "112"


def _benign_call(rng: random.Random, c: _Cust, start_ms: int) -> _Call:
    r = rng.random
    u = r()
    if u < c.p_in:
        direction = _IN
        di = _pick(c.did_cum, r())
        did = c.dids[di]
        v = r()
        region = c.p.country
        if v < 0.12:
            fixed, mobile = c.intl_pools[_pick(c.intl_cum, r())]
            pool = fixed if r() < 0.6 else mobile
        else:
            pool = c.nat_fixed if v < 0.6 else c.nat_mobile
        num = pool[int(r() * len(pool))]
        caller, caller_raw = num.e164, _dial(num, region)
        callee, callee_raw = did, c.did_nat[di]
        asr = c.asr_in
        mu = c.mu
    elif u < c.p_int:
        direction = _INT
        a = int(r() * c.ext_n)
        b = (a + 1 + int(r() * (c.ext_n - 1))) % c.ext_n
        caller = caller_raw = str(c.ext_lo + a)
        callee = callee_raw = str(c.ext_lo + b)
        did = None
        asr = 0.8
        mu = 3.6  # internal calls: mean ~ 55 s
    else:
        direction = _OUT
        di = _pick(c.cli_cum, r())
        did = caller = c.dids[di]
        caller_raw = c.did_nat[di]
        v = r()
        asr = c.asr_out
        mu = c.mu
        if v < 0.001:
            callee = callee_raw = _EMERGENCY
            asr = 1.0
            mu = 4.4
        else:
            if v < 0.011:
                pool = c.toll_free
            elif v < 0.011 + c.p.international_share:
                fixed, mobile = c.intl_pools[_pick(c.intl_cum, r())]
                pool = fixed if r() < 0.6 else mobile
            else:
                pool = c.nat_fixed if r() < 0.65 else c.nat_mobile
            num = pool[int(r() * len(pool))]
            callee = num.e164
            callee_raw = _dial(num, c.p.country)
    w = r()
    if w < asr:
        ring_ms = (
            int((2.0 + min(38.0, rng.expovariate(1 / 6.0))) * 1000)
            if callee != _EMERGENCY
            else int((1.0 + r() * 2) * 1000)
        )
        talk_ms = max(1000, min(10_800_000, int(rng.lognormvariate(mu, 0.9) * 1000)))
        answer = start_ms + ring_ms
        end = answer + talk_ms
        media = _healthy_media(rng, c.codec, talk_ms)
        return (
            start_ms,
            answer,
            end,
            c.cid,
            direction,
            caller,
            callee,
            caller_raw,
            callee_raw,
            did,
            _ANS,
            16,
            c.ip,
            c.ua,
            c.codec,
            media,
            -1,
        )
    x = r()
    if x < 0.65:
        disp, cause, dur = _NOANS, (19 if r() < 0.6 else 16), 8.0 + r() * 37.0
    elif x < 0.85:
        disp, cause, dur = _BUSY, 17, 0.5 + r() * 3.5
    elif x < 0.95:
        disp, cause, dur = _FAILED, (1, 28, 38)[int(r() * 3)], 0.1 + r() * 1.9
    else:
        disp, cause, dur = _CONG, 34, r() * 1.0
    return (
        start_ms,
        None,
        start_ms + int(dur * 1000),
        c.cid,
        direction,
        caller,
        callee,
        caller_raw,
        callee_raw,
        did,
        disp,
        cause,
        c.ip,
        c.ua,
        c.codec,
        None,
        -1,
    )
