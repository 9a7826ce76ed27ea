"""Episode builders: the calls of each episode kind (``_ep_*``, dispatched by ``_GENERATORS``)."""

from __future__ import annotations

import math
import random
from typing import Any

from .calls import (
    _BUSY,
    _FAILED,
    _NOANS,
    _PAYLOAD_BYTES,
    _Call,
    _Cust,
    _degraded_media,
    _in_call,
    _out_call,
    _pick,
)
from .pools import _ANY, _FIXED, _POOL_SPECS, _Num, _parse_valid, _pool, _random_digits

# --------------------------------------------------------------------------- episode generators

_ATTACKER_UA = "sipcli/v1.8"


_EpisodeOut = tuple[list[_Call], dict[str, str]]


def _lognorm_median(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.lognormvariate(math.log(median), sigma)))


def _uniform_starts(rng: random.Random, n: int, t0: int, span_ms: int) -> list[int]:
    return sorted(t0 + int(rng.random() * span_ms) for _ in range(n))


def _ep_premium(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    pool = _pool("XX", "premium")
    # one destination of each family first, so that every family shows up
    families: dict[str, list[_Num]] = {}
    for num in pool:
        fam = num.e164[:5] if num.e164.startswith(("+39", "+44")) else num.e164[:4]
        families.setdefault(fam, []).append(num)
    keys = sorted(families)
    rng.shuffle(keys)
    dests = [rng.choice(families[k]) for k in keys[: prm["n_destinations"]]]
    while len(dests) < prm["n_destinations"]:
        dests.append(rng.choice(pool))
    ip = f"203.0.113.{200 + rng.randrange(50)}"
    calls: list[_Call] = []
    for s in _uniform_starts(rng, prm["n_calls"], t0, span):
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.5, prm["talk_min_s"], prm["talk_max_s"])
        ring = rng.uniform(3, 10) if ans else rng.uniform(20, 40)
        calls.append(
            _out_call(
                c,
                rng,
                s,
                rng.randrange(len(c.dids)),
                rng.choice(dests),
                ans,
                ring,
                talk,
                label,
                ip=ip,
                ua=_ATTACKER_UA,
            )
        )
    return calls, {"kind": "account", "value": c.cid}


def _ep_reward(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    dests = rng.sample(c.nat_mobile, prm["n_destinations"])
    cli = rng.randrange(len(c.dids))
    n = prm["n_calls"]
    step = span / n
    calls: list[_Call] = []
    for i in range(n):
        s = t0 + int(i * step + rng.uniform(-0.1, 0.1) * step) if i else t0
        talk = prm["billsec_s"] + rng.uniform(-1, 1) * prm["billsec_jitter_s"]
        calls.append(_out_call(c, rng, s, cli, dests[i % len(dests)], True, rng.uniform(2, 4), talk, label))
    return calls, {"kind": "cli", "value": c.dids[cli]}


def _ep_pumping(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    di = rng.randrange(len(c.dids))
    did = c.dids[di]
    prefixes = list(prm["origin_prefixes"])
    origins: list[_Num] = []
    seen: set[str] = set()
    tries = 0
    while len(origins) < prm["n_origins"]:
        tries += 1
        if tries > prm["n_origins"] * 100:
            raise ValueError(f"arbitrage_pumping: no valid numbers in origin_prefixes {prefixes}")
        prefix = prefixes[len(origins) % len(prefixes)]
        num = None
        for n_digits in (6, 7, 5, 8):  # first length that gives a valid number
            e164 = prefix + _random_digits(rng, n_digits)
            num = _parse_valid(e164, _ANY, None)
            if num is not None:
                break
        if num is not None and num.e164 not in seen:
            seen.add(num.e164)
            origins.append(num)
    calls: list[_Call] = []
    n = prm["n_calls"]
    step = span / n
    for i in range(n):  # one call in each of n equal slots: a steady, generated flow
        s = t0 + int((i + rng.random()) * step)
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.4, prm["talk_min_s"], prm["talk_max_s"])
        ring = rng.uniform(1, 4) if ans else rng.uniform(15, 30)
        calls.append(_in_call(c, rng, s, did, c.did_nat[di], rng.choice(origins), ring, talk, label, ans))
    return calls, {"kind": "did", "value": did}


def _ep_high_cost(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    dests = rng.sample(_pool("XX", "high_cost"), prm["n_destinations"])
    target_s = prm["talk_minutes"] * 60.0
    talked = 0.0
    calls: list[_Call] = []
    starts: list[tuple[int, bool, float]] = []
    while talked < target_s:
        ans = rng.random() < prm["answer_ratio"]
        talk = rng.uniform(prm["talk_min_s"], prm["talk_max_s"])
        if ans:
            talked += talk
        starts.append((t0 + int(rng.random() * span), ans, talk))
    starts.sort()
    for s, ans, talk in starts:
        ring = rng.uniform(4, 12) if ans else rng.uniform(20, 45)
        calls.append(
            _out_call(c, rng, s, rng.randrange(len(c.dids)), rng.choice(dests), ans, ring, talk, label)
        )
    return calls, {"kind": "account", "value": c.cid}


def _sequential_block(rng: random.Random, c: _Cust, first_suffix: int, n: int) -> list[_Num]:
    region = c.p.country
    prefixes = _POOL_SPECS[(region, "fixed")][2]
    for _ in range(200):
        prefix, n_digits = rng.choice(prefixes)
        head = _random_digits(rng, n_digits - 4)
        base = int(head + "0000") + first_suffix
        if len(str(base + n)) > n_digits:
            continue
        nums = []
        for i in range(n):
            num = _parse_valid(f"{prefix}{str(base + i).zfill(n_digits)}", _FIXED, region)
            if num is None:
                break
            nums.append(num)
        else:
            return nums
    raise RuntimeError("autodialer: no block of sequential valid numbers found")


def _ep_autodialer(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    step_s = 60.0 / prm["attempts_per_min"]
    n = int(span / 1000 / step_s)
    dests = _sequential_block(rng, c, int(prm["first_suffix"]), n)
    cli = rng.randrange(len(c.dids))
    calls: list[_Call] = []
    t = float(t0)
    for i in range(n):
        s = int(t)
        t += (
            step_s
            + max(
                -3 * prm["interval_jitter_s"],
                min(3 * prm["interval_jitter_s"], rng.gauss(0, prm["interval_jitter_s"])),
            )
        ) * 1000
        if rng.random() < prm["answer_ratio"]:
            calls.append(
                _out_call(
                    c,
                    rng,
                    s,
                    cli,
                    dests[i],
                    True,
                    rng.uniform(3, 8),
                    rng.uniform(prm["talk_min_s"], prm["talk_max_s"]),
                    label,
                )
            )
            continue
        x = rng.random()
        if x < 0.8:
            calls.append(
                _out_call(
                    c, rng, s, cli, dests[i], False, rng.uniform(10, 20), 0, label, disp=_NOANS, cause=19
                )
            )
        elif x < 0.95:
            calls.append(
                _out_call(c, rng, s, cli, dests[i], False, rng.uniform(1, 3), 0, label, disp=_BUSY, cause=17)
            )
        else:
            calls.append(
                _out_call(
                    c, rng, s, cli, dests[i], False, rng.uniform(0.2, 1), 0, label, disp=_FAILED, cause=1
                )
            )
    return calls, {"kind": "cli", "value": c.dids[cli]}


def _ep_wangiri(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    pools: list[_Num] = []
    for region in prm["countries"]:
        pools.extend(_pool(region, "mobile"))
    n = prm["n_calls"]
    if n > len(pools):
        raise ValueError(
            f"wangiri: n_calls {n} exceeds the {len(pools)} distinct numbers of {prm['countries']}"
        )
    dests = rng.sample(pools, n)
    cli = rng.randrange(len(c.dids))
    calls: list[_Call] = []
    for i, s in enumerate(_uniform_starts(rng, n, t0, span)):
        ring = rng.uniform(prm["ring_min_s"], prm["ring_max_s"])
        calls.append(_out_call(c, rng, s, cli, dests[i], False, ring, 0, label, disp=_NOANS, cause=16))
    return calls, {"kind": "cli", "value": c.dids[cli]}


def _spare_did(c: _Cust) -> tuple[str, str]:
    last = c.dids[-1]
    head = last[:-4]
    nxt = f"{head}{int(last[-4:]) + 1:04d}"
    num = _parse_valid(nxt, _FIXED, c.p.country)
    if num is None:
        raise RuntimeError(f"no spare DID after {last}")
    return nxt, num.national


def _lanes(
    rng: random.Random, n_lanes: int, t0: int, span: int, talk_min: float, talk_max: float, gap_max: float
) -> list[tuple[int, float, float]]:
    """Back-to-back calls on ``n_lanes`` lanes: (start_ms, ring_s, talk_s); all lanes busy at t0 + 60 s."""
    out = []
    end_window = t0 + span
    for _ in range(n_lanes):
        s = t0 + int(rng.random() * min(60_000, span))
        while s < end_window:
            ring = rng.uniform(2, 8)
            talk = rng.uniform(talk_min, talk_max)
            out.append((s, ring, talk))
            s += int(ring * 1000) + int(talk * 1000) + int(rng.random() * gap_max * 1000)
    out.sort()
    return out


def _ep_did_concurrency(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    did, did_raw = _spare_did(c)
    calls: list[_Call] = []
    for s, ring, talk in _lanes(
        rng, int(prm["n_concurrent"]), t0, span, prm["talk_min_s"], prm["talk_max_s"], prm["gap_max_s"]
    ):
        pool = c.nat_fixed if rng.random() < 0.5 else c.nat_mobile
        calls.append(_in_call(c, rng, s, did, did_raw, pool[rng.randrange(len(pool))], ring, talk, label))
    return calls, {"kind": "did", "value": did}


def _ep_bandwidth(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    codec = c.codec if _PAYLOAD_BYTES.get(c.codec, 160) == 160 else "PCMA"
    calls: list[_Call] = []
    for s, ring, talk in _lanes(
        rng, int(prm["n_concurrent"]), t0, span, prm["talk_min_s"], prm["talk_max_s"], 20
    ):
        media = _degraded_media(
            rng, codec, int(talk * 1000), prm["kbps_per_call"], prm["mos_min"], prm["mos_max"]
        )
        if rng.random() < 0.5:
            pool = c.nat_fixed if rng.random() < 0.6 else c.nat_mobile
            calls.append(
                _out_call(
                    c,
                    rng,
                    s,
                    _pick(c.cli_cum, rng.random()),
                    pool[rng.randrange(len(pool))],
                    True,
                    ring,
                    talk,
                    label,
                    codec=codec,
                    media=media,
                )
            )
        else:
            di = _pick(c.did_cum, rng.random())
            pool = c.nat_fixed if rng.random() < 0.6 else c.nat_mobile
            calls.append(
                _in_call(
                    c,
                    rng,
                    s,
                    c.dids[di],
                    c.did_nat[di],
                    pool[rng.randrange(len(pool))],
                    ring,
                    talk,
                    label,
                    media=media,
                    codec=codec,
                )
            )
    return calls, {"kind": "account", "value": c.cid}


def _ep_volume(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    pool = _pool("XX", "new_country")
    rate_per_ms = prm["factor"] * c.out_per_hour / 3_600_000
    calls: list[_Call] = []
    t = t0 + rng.expovariate(rate_per_ms)
    while t < t0 + span:
        s = int(t)
        t += rng.expovariate(rate_per_ms)
        num = pool[rng.randrange(len(pool))]
        ans = rng.random() < prm["answer_ratio"]
        talk = max(5.0, rng.lognormvariate(math.log(prm["talk_mean_s"]) - 0.18, 0.6))
        ring = rng.uniform(4, 15) if ans else rng.uniform(20, 45)
        calls.append(_out_call(c, rng, s, _pick(c.cli_cum, rng.random()), num, ans, ring, talk, label))
    return calls, {"kind": "account", "value": c.cid}


_GENERATORS = {
    "premium_destination": _ep_premium,
    "arbitrage_reward": _ep_reward,
    "arbitrage_pumping": _ep_pumping,
    "arbitrage_high_cost": _ep_high_cost,
    "autodialer": _ep_autodialer,
    "wangiri": _ep_wangiri,
    "did_concurrency": _ep_did_concurrency,
    "bandwidth": _ep_bandwidth,
    "volume_anomaly": _ep_volume,
}
