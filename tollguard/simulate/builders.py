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
from .pools import (
    _ANY,
    _FIXED,
    _POOL_SPECS,
    _fresh_numbers,
    _Num,
    _parse_valid,
    _pool,
    _prefix_pool,
    _random_digits,
)

# --------------------------------------------------------------------------- episode generators

_ATTACKER_UA = "sipcli/v1.8"


_EpisodeOut = tuple[list[_Call], dict[str, str]]


def _lognorm_median(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.lognormvariate(math.log(median), sigma)))


def _uniform_starts(rng: random.Random, n: int, t0: int, span_ms: int) -> list[int]:
    return sorted(t0 + int(rng.random() * span_ms) for _ in range(n))


def _attack_lanes(
    rng: random.Random, n_lanes: int, t0: int, span: int, prm: dict[str, Any]
) -> list[tuple[int, float, float, bool]]:
    """Parallel attack lines: (start_ms, ring_s, talk_s, answered), each line dialling back to back.

    Lines start one after another (a gap of U(0, gap_max_s) each, as a script opens its calls);
    an answered call talks lognormal(``talk_median_s``, 0.5) clipped to [talk_min_s, talk_max_s];
    an unanswered one rings 20-45 s; the next call of a line follows U(0.2 s, gap_max_s) later.
    """
    out = []
    end_window = t0 + span
    gap_max = max(0.2, float(prm["gap_max_s"]))
    s_lane = float(t0)
    for _ in range(n_lanes):
        s = s_lane
        while s < end_window:
            ans = rng.random() < prm["answer_ratio"]
            ring = rng.uniform(3, 10) if ans else rng.uniform(20, 45)
            talk = _lognorm_median(rng, prm["talk_median_s"], 0.5, prm["talk_min_s"], prm["talk_max_s"])
            out.append((int(s), ring, talk, ans))
            s += (ring + (talk if ans else 0.0) + rng.uniform(0.2, gap_max)) * 1000
        s_lane += rng.uniform(0, gap_max) * 1000
        if s_lane >= end_window:
            break
    out.sort()
    return out


def _premium_pool(c: _Cust, families: str) -> tuple[_Num, ...]:
    if families == "any":  # the classic mix: IT 899 / 848, GB 909 / 871, +881, +882, +979
        return _pool("XX", "premium")
    national = _pool(c.p.country, "premium") if (c.p.country, "premium") in _POOL_SPECS else ()
    if families == "national" and national:
        return national
    if families == "international" or not national:
        return _pool("XX", "high_risk")
    if families == "mixed":
        return national + _pool("XX", "high_risk")
    raise ValueError(f"premium_destination: families must be any, national, international or mixed, not {families!r}")


def _premium_family(e164: str, families: str) -> str:
    if families == "any":
        return e164[:5] if e164.startswith(("+39", "+44")) else e164[:4]
    return e164[:4] if e164.startswith(("+88", "+979")) else e164[:6]


def _ep_premium(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    pool = _premium_pool(c, prm["families"])
    # one destination of each family first, so that every family shows up
    families: dict[str, list[_Num]] = {}
    for num in pool:
        families.setdefault(_premium_family(num.e164, prm["families"]), []).append(num)
    keys = sorted(families)
    rng.shuffle(keys)
    dests = [rng.choice(families[k]) for k in keys[: prm["n_destinations"]]]
    while len(dests) < prm["n_destinations"]:
        dests.append(rng.choice(pool))
    ip = f"203.0.113.{200 + rng.randrange(50)}"
    ua: str | None = _ATTACKER_UA
    if prm["from_customer_pbx"]:  # a hacked PBX: the calls leave from the customer's own address
        ip, ua = c.ip, None
    calls: list[_Call] = []
    if prm["lanes"] > 0:  # parallel lines, each placing calls back to back
        for s, ring, talk, ans in _attack_lanes(rng, int(prm["lanes"]), t0, span, prm):
            calls.append(
                _out_call(c, rng, s, rng.randrange(len(c.dids)), rng.choice(dests), ans, ring, talk, label,
                          ip=ip, ua=ua)
            )
        return calls, {"kind": "account", "value": c.cid}
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
                ua=ua,
            )
        )
    return calls, {"kind": "account", "value": c.cid}


def _ep_reward(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    kind = prm["dest_kind"]
    pool = {"mobile": c.nat_mobile, "fixed": c.nat_fixed, "mixed": c.nat_mobile + c.nat_fixed}[kind]
    dests = rng.sample(pool, prm["n_destinations"])
    cli = rng.randrange(len(c.dids))
    clis = [cli]
    if prm["n_clis"] > 1:  # the scheme rotates over several of the customer's numbers
        others = [i for i in range(len(c.dids)) if i != cli]
        clis += rng.sample(others, min(len(others), int(prm["n_clis"]) - 1))
    n = prm["n_calls"]
    step = span / n
    jitter = prm["spacing_jitter"]
    ratio = prm["answer_ratio"]
    calls: list[_Call] = []
    for i in range(n):
        s = t0 + int(i * step + rng.uniform(-jitter, jitter) * step) if i else t0
        talk = prm["billsec_s"] + rng.uniform(-1, 1) * prm["billsec_jitter_s"]
        k = clis[i % len(clis)]
        if ratio < 1.0 and rng.random() >= ratio:
            calls.append(_out_call(c, rng, s, k, dests[i % len(dests)], False, rng.uniform(10, 30), 0, label))
            continue
        calls.append(_out_call(c, rng, s, k, dests[i % len(dests)], True, rng.uniform(2, 4), talk, label))
    if len(clis) > 1:
        return calls, {"kind": "account", "value": c.cid}
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
    poisson = prm["arrivals"] == "poisson"
    for i in range(n):  # one call in each of n equal slots: a steady, generated flow
        s = t0 + int(rng.random() * span) if poisson else t0 + int((i + rng.random()) * step)
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.4, prm["talk_min_s"], prm["talk_max_s"])
        ring = rng.uniform(1, 4) if ans else rng.uniform(15, 30)
        calls.append(_in_call(c, rng, s, did, c.did_nat[di], rng.choice(origins), ring, talk, label, ans))
    if poisson:
        calls.sort()
    return calls, {"kind": "did", "value": did}


def _ep_high_cost(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    if prm["lanes"] > 0:
        return _ep_high_cost_lanes(rng, c, t0, span, prm, label)
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


def _ep_high_cost_lanes(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    """IRSF through a hacked PBX: ``lanes`` parallel lines to numbers of the ``prefixes`` ranges."""
    prefixes = list(prm["prefixes"]) or ["+239", "+225", "+53"]
    per_prefix = [list(_prefix_pool(p)) if len(p) > 4 else [] for p in prefixes]
    for i, p in enumerate(prefixes):
        if not per_prefix[i]:  # a bare country code: the classic high-cost pool's numbers in it
            per_prefix[i] = [n for n in _pool("XX", "high_cost") if n.e164.startswith(p)] or list(_prefix_pool(p))
    n_dest = max(len(prefixes), int(prm["n_destinations"]))
    dests = [rng.choice(nums) for nums in per_prefix]  # every range at least once
    while len(dests) < n_dest:
        dests.append(rng.choice(per_prefix[rng.randrange(len(per_prefix))]))
    calls: list[_Call] = []
    for s, ring, talk, ans in _attack_lanes(rng, int(prm["lanes"]), t0, span, prm):
        calls.append(_out_call(c, rng, s, rng.randrange(len(c.dids)), rng.choice(dests), ans, ring, talk, label))
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
    if prm["destinations"] == "sequential":
        dests = _sequential_block(rng, c, int(prm["first_suffix"]), n)
    elif prm["destinations"] == "random":  # a purchased list: national fixed and mobile numbers
        dests = _fresh_numbers(rng, c.p.country, ("fixed", "mobile"), n)
    else:
        raise ValueError(f"autodialer: destinations must be sequential or random, not {prm['destinations']!r}")
    cli = rng.randrange(len(c.dids))
    clis = [cli]
    if prm["n_clis"] > 1:  # the campaign rotates its presented numbers
        others = [i for i in range(len(c.dids)) if i != cli]
        clis += rng.sample(others, min(len(others), int(prm["n_clis"]) - 1))
    pacing = prm["pacing"]
    if pacing not in ("regular", "poisson", "batch"):
        raise ValueError(f"autodialer: pacing must be regular, poisson or batch, not {pacing!r}")
    batch = max(1, int(prm["batch_size"]))
    calls: list[_Call] = []
    t = float(t0)
    end_window = t0 + span
    for i in range(n):
        s = int(t)
        if s >= end_window and pacing != "regular":
            break
        if pacing == "poisson":
            t += rng.expovariate(1.0 / step_s) * 1000
        elif pacing == "batch":  # a burst of `batch` calls a fraction of a second apart, then a pause
            within = rng.uniform(0.1, 1.0)
            t += (within if (i + 1) % batch else max(0.1, batch * step_s - (batch - 1) * 0.55)) * 1000
        else:
            t += (
                step_s
                + max(
                    -3 * prm["interval_jitter_s"],
                    min(3 * prm["interval_jitter_s"], rng.gauss(0, prm["interval_jitter_s"])),
                )
            ) * 1000
        if len(clis) > 1:
            cli = clis[i % len(clis)]
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
    if len(clis) > 1:
        return calls, {"kind": "account", "value": c.cid}
    return calls, {"kind": "cli", "value": c.dids[cli]}


def _ep_wangiri(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _EpisodeOut:
    n = prm["n_calls"]
    dests: list[_Num] = []
    if prm["fresh_numbers"]:  # a sweep larger than the pools: numbers drawn at random, split over the countries
        countries = list(prm["countries"])
        for j, region in enumerate(countries):
            share = n // len(countries) + (1 if j < n % len(countries) else 0)
            dests.extend(_fresh_numbers(rng, region, ("mobile",), share))
        rng.shuffle(dests)
    else:
        pools: list[_Num] = []
        for region in prm["countries"]:
            pools.extend(_pool(region, "mobile"))
        if n > len(pools):
            raise ValueError(
                f"wangiri: n_calls {n} exceeds the {len(pools)} distinct numbers of {prm['countries']}"
            )
        dests = rng.sample(pools, n)
    cli = rng.randrange(len(c.dids))
    clis = [cli]
    if prm["n_clis"] > 1:
        others = [i for i in range(len(c.dids)) if i != cli]
        clis += rng.sample(others, min(len(others), int(prm["n_clis"]) - 1))
    ratio = prm["answer_ratio"]
    calls: list[_Call] = []
    for i, s in enumerate(_uniform_starts(rng, n, t0, span)):
        ring = rng.uniform(prm["ring_min_s"], prm["ring_max_s"])
        k = clis[i % len(clis)]
        if ratio > 0 and rng.random() < ratio:  # a victim picks up at once; the robot hangs up
            calls.append(_out_call(c, rng, s, k, dests[i], True, ring, rng.uniform(1, 5), label))
            continue
        calls.append(_out_call(c, rng, s, k, dests[i], False, ring, 0, label, disp=_NOANS, cause=16))
    if len(clis) > 1:
        return calls, {"kind": "account", "value": c.cid}
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
