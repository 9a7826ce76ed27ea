"""Varied episodes and customers: parameters drawn from wide, documented ranges.

The classic episodes (:data:`~tollguard.simulate.EPISODE_DEFAULTS`) have one size each, the size
our own detectors were tuned on. With ``variety`` a seed draws every episode's pace, duration,
destinations, call lengths, answer ratio, time of day and customer from :data:`EPISODE_RANGES`
(one table, each range with its source), from the stealthy end ("a fraudster at half the pace")
to the loud one, and the customers from :data:`PROFILE_RANGES`. The ranges come from
``../shared/notes/field-figures.md`` (public figures, each with its source; "vendor" marks
marketing material) and from issue 9; where no public figure exists the comment says
"engineering guess" and why.

A range is ``R(lo, hi, how)``: ``how`` is ``"uniform"``, ``"log"`` (log-uniform: as many draws
per factor of 2 at the slow end as at the fast one), ``"int"`` or ``"logint"``; a choice is
``C(options, weights)``.

Examples
--------
>>> import random
>>> from tollguard.simulate import default_profiles
>>> profiles = default_profiles(12, seed=3, variety=True)
>>> eps = draw_episodes(list(EPISODE_RANGES), profiles, 2880, random.Random(3))
>>> sorted(e.kind for e in eps) == sorted(EPISODE_RANGES)
True
>>> len({e.customer_id for e in eps}) == len(eps)
True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .episodes import EPISODE_DEFAULTS, Episode
from .profiles import _COUNTRY_WEIGHTS, _USER_AGENTS, CustomerProfile, _did_block, _doc_ip


@dataclass(frozen=True)
class R:
    """A numeric range: ``how`` = ``uniform``, ``log`` (log-uniform), ``int`` or ``logint``."""

    lo: float
    hi: float
    how: str = "uniform"

    def draw(self, rng: random.Random) -> float:
        if self.how == "uniform":
            return rng.uniform(self.lo, self.hi)
        if self.how == "log":
            return math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        if self.how == "int":
            return float(rng.randint(int(self.lo), int(self.hi)))
        if self.how == "logint":
            return float(min(int(self.hi), int(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi + 1))))))
        raise ValueError(f"unknown range kind {self.how!r}")


@dataclass(frozen=True)
class C:
    """A choice among ``options`` with ``weights``."""

    options: tuple[Any, ...]
    weights: tuple[float, ...]

    def draw(self, rng: random.Random) -> Any:
        return rng.choices(self.options, self.weights)[0]


# Time-of-day classes of an episode's start, in the customer's local time: "business" = weekday
# business hours, "evening" = weekday evening (business end - 23:00) or weekend daytime,
# "night" = 23:00-07:00 any day.
TIME_CLASSES: tuple[str, ...] = ("business", "evening", "night")

# IRSF destinations (E.164 ranges with enough digits to be one operator's range). The first eight
# are in the default rules' high_cost_country_codes (CFCA / GSMA hot lists); the last five are not:
# IPRN payouts were offered for 201 country codes (TransNexus IPRN study, 2015), so an attack need
# not go where the operator's list looks.
IRSF_RANGES: tuple[str, ...] = (
    "+23998", "+22507", "+535", "+23276", "+25261", "+37126", "+6757", "+37256",  # in the default list
    "+22462", "+2165", "+2207", "+2359", "+37369",  # Guinea, Tunisia, Gambia, Chad, Moldova: not in it
)

# Origin ranges of inbound traffic pumping: Latvian and Isle of Man mobile ranges, and the
# anchors' usual origins +222 / +232 / +252 (field-figures.md, "Pattern figures: Wangiri origins").
PUMPING_ORIGINS: tuple[str, ...] = ("+37126", "+447624", "+22236", "+23276", "+25261")

WANGIRI_COUNTRIES: tuple[str, ...] = ("GB", "DE", "FR", "ES", "CH", "US", "IT")

EPISODE_RANGES: dict[str, dict[str, R | C]] = {
    "premium_destination": {
        "duration_min": R(15, 180, "log"),  # 16 min fast attack (TransNexus 2019) .. 2-3 h attacks (iCONX, vendor)
        "time_of_day": C(TIME_CLASSES, (0.2, 0.3, 0.5)),  # nights and weekends preferred (Xintec; PBX-security guides)
        "lanes": R(1, 10, "logint"),  # parallel calls: 6 at once to IT 899 (issue 9); hacked trunks run several lines
        "n_destinations": R(1, 12, "logint"),  # Oracle Click2Call: 3 distinct numbers/60 min is already suspect
        "families": C(("national", "international", "mixed"), (0.6, 0.2, 0.2)),  # national premium (issue 9)
        "answer_ratio": R(0.1, 1.0),  # 14 of 111 calls connected (TransNexus 2019) .. revenue-share lines answer all
        "talk_median_s": R(60, 1800, "log"),  # 1-min reward lines .. IRSF calls "20 min or longer" (TransNexus 2017)
        "gap_max_s": R(2, 102),  # gaps between calls 0.2 s .. 1 min 42 s (TransNexus 2019)
        "from_customer_pbx": C((True, False), (0.5, 0.5)),  # hacked PBX vs stolen SIP credentials (engineering guess)
    },
    "arbitrage_reward": {
        "duration_min": R(60, 480, "log"),  # engineering guess: credit builds over hours; 2-3 h attacks (iCONX)
        "time_of_day": C(TIME_CLASSES, (0.3, 0.3, 0.4)),  # engineering guess: any time, night favoured
        "calls_per_hour": R(15, 180, "log"),  # issue 9: several numbers each under 60/h; slow end 15/h
        "n_destinations": R(2, 8, "int"),  # issue 9: "spread over 2-8 numbers"
        "n_clis": C((1, 2, 3), (0.6, 0.25, 0.15)),  # engineering guess: rotating CLIs, as robocallers do
        "billsec_s": R(20, 180, "log"),  # engineering guess: a paid minimum per call, 20 s .. 3 min
        "billsec_jitter_s": R(0.2, 3.0),  # engineering guess: a timer plus signalling delay (robots, not people)
        "answer_ratio": R(0.85, 1.0),  # engineering guess: the scheme's numbers answer; congestion drops a few
        "spacing_jitter": R(0.05, 0.9),  # steady (+-5 % of the slot) .. irregular (+-90 %)
        "dest_kind": C(("mobile", "fixed", "mixed"), (0.5, 0.3, 0.2)),  # auto top-up: mobiles; reward: any
    },
    "arbitrage_pumping": {
        "duration_min": R(60, 360, "log"),  # Sonoc: over 60 min on one number within 3 h; 2-3 h attacks (iCONX)
        "time_of_day": C(TIME_CLASSES, (0.3, 0.3, 0.4)),  # nights and weekends preferred (Xintec)
        "calls_per_hour": R(20, 300, "log"),  # Sonoc: same number > 4 times/h .. ~400 calls/h (TransNexus 2019)
        "n_ranges": R(1, 5, "int"),  # issue 9: pumping from 1-5 origin ranges
        "n_origins": R(5, 200, "logint"),  # engineering guess: a few SIMs .. a range of numbers
        "talk_median_s": R(120, 900, "log"),  # Sonoc: calls over 8 minutes; FCC access stimulation: long holds
        "answer_ratio": R(0.8, 1.0),  # the pumped DID answers (engineering guess)
        "arrivals": C(("slots", "poisson"), (0.5, 0.5)),  # steady generated flow or random
    },
    "arbitrage_high_cost": {
        "duration_min": R(30, 240, "log"),  # 2-3 h attacks (iCONX); $160,000 in 30 h (PBX-security guides)
        "time_of_day": C(TIME_CLASSES, (0.15, 0.35, 0.5)),  # nights and weekends preferred (Xintec)
        "lanes": R(2, 30, "logint"),  # issue 9: IRSF from 2 to 30 parallel calls
        "talk_median_s": R(300, 3600, "log"),  # issue 9: calls of 5-60 min; "20 min or longer" (TransNexus 2017)
        "n_ranges": R(1, 6, "logint"),  # 37 countries in 16 min (TransNexus 2019); most attacks use a few
        "n_destinations": R(1, 40, "logint"),  # 89 numbers in 16 min (TransNexus 2019) .. one test number
        "answer_ratio": R(0.15, 0.95),  # 14 of 111 connected (TransNexus 2019) .. IPRN lines answering
        "gap_max_s": R(2, 102),  # gaps between calls 0.2 s .. 1 min 42 s (TransNexus 2019)
    },
    "autodialer": {
        "duration_min": R(20, 180, "log"),  # issue 9: 20 min to 3 h; ClearIP robocalling trigger: over 60 min
        "time_of_day": C(TIME_CLASSES, (0.75, 0.2, 0.05)),  # campaigns run in calling hours (engineering guess)
        "attempts_per_min": R(6, 40, "log"),  # issue 9: 6-40/min; at least 5 attempts/min in batches (46labs)
        "destinations": C(("sequential", "random"), (0.5, 0.5)),  # issue 9: sequential or random destinations
        "pacing": C(("regular", "poisson", "batch"), (0.4, 0.3, 0.3)),  # "in batches" (46labs); paced dialers
        "batch_size": R(3, 10, "int"),  # engineering guess: a burst per free line group
        "interval_jitter_s": R(0.02, 1.0, "log"),  # regular pacing: a timer (engineering guess)
        "answer_ratio": R(0.05, 0.5),  # ASR ~20 % low-quality routes (Sippy); ASR < 60 % (Ziron)
        "talk_min_s": R(3, 10),  # ACD < 30 s (Ziron); most dialer calls < 60 s (legalcallsonly)
        "talk_max_s": R(20, 60),  # same sources
        "n_clis": C((1, 2, 3), (0.7, 0.2, 0.1)),  # engineering guess: campaigns rotate presented numbers
    },
    "wangiri": {
        "duration_min": R(10, 180, "log"),  # 5-minute buckets per calling number (NexOSS#402; ClearIP)
        "time_of_day": C(TIME_CLASSES, (0.3, 0.4, 0.3)),  # engineering guess: callbacks wanted, any hour
        "calls_per_min": R(1, 40, "log"),  # engineering guess: a slow sweep .. a burst
        "ring_min_s": R(0.3, 1.0),  # rings under 1-3 s (NexOSS#402)
        "ring_max_s": R(1.5, 3.0),  # same source
        "n_countries": R(1, 6, "int"),  # engineering guess: one market .. a sweep over several
        "n_clis": C((1, 2, 3), (0.7, 0.2, 0.1)),  # engineering guess
        "answer_ratio": R(0.0, 0.03),  # engineering guess: a few victims pick up within the ring
    },
    "did_concurrency": {
        "duration_min": R(20, 240, "log"),  # engineering guess: a campaign's busy hours
        "time_of_day": C(TIME_CLASSES, (0.9, 0.1, 0.0)),  # call centres with bought capacity (field-figures)
        "n_concurrent": R(21, 60, "int"),  # contract 6.1: anything above 20 must be raised
        "talk_min_s": R(30, 120),  # engineering guess: call-centre calls of 1-15 min
        "talk_max_s": R(300, 1200),  # same
        "gap_max_s": R(0, 60),  # engineering guess: agent wrap-up
    },
    "bandwidth": {
        "duration_min": R(20, 240, "log"),  # engineering guess: a congested afternoon
        "time_of_day": C(TIME_CLASSES, (0.9, 0.1, 0.0)),  # the link fills in business hours
        "n_concurrent": R(2, 20, "logint"),  # engineering guess: a small office .. a busy site
        "kbps_per_call": R(20, 50),  # RTP-level kbps; 50 is 58 at the IP layer: below 60 a call (3.1), G.711 needs 80
        "mos_min": R(1.5, 2.8),  # ITU-T G.107/G.109: below 3.6 users are dissatisfied
        "mos_max": R(2.9, 3.4),  # same
        "talk_min_s": R(60, 180),  # ordinary calls (engineering guess)
        "talk_max_s": R(300, 900),  # same
    },
    "volume_anomaly": {
        "duration_min": R(60, 240, "log"),  # 2-3 h attacks (iCONX)
        "time_of_day": C(TIME_CLASSES, (0.1, 0.3, 0.6)),  # nights and weekends preferred (Xintec)
        "factor": R(2, 10, "log"),  # engineering guess: twice .. ten times the customer's peak outbound rate
        "answer_ratio": R(0.4, 0.7),  # typical ASR 50-70 % (Sippy)
        "talk_mean_s": R(60, 300, "log"),  # conversational ACD ~3 min (legalcallsonly)
    },
}
"""The drawn parameters of each episode kind, each range with its source (see the module doc)."""

PROFILE_RANGES: dict[str, R] = {
    # no public figure for tenant sizes: a 3-seat office .. a 100-seat contact centre (classic: 8-180)
    "calls_per_hour_peak": R(3, 400, "log"),
    "international_share": R(0.01, 0.35),  # classic 0.03-0.2; exporters call abroad more (engineering guess)
    "answer_ratio": R(0.45, 0.75),  # typical ASR about 70 % incumbents, 50 % wholesale (Sippy)
    "mean_talk_s": R(90, 300, "log"),  # conversational ACD of 3 min or more (legalcallsonly)
    "inbound_share": R(0.2, 0.6),  # engineering guess: outbound sales .. inbound service desks
    "internal_share": R(0.02, 0.2),  # engineering guess
}
"""Ranges of :func:`varied_profiles` (with ``default_profiles(..., variety=True)``)."""

WARMUP_MIN = 120
"""An episode starts at least this long after the run's start (detectors' hourly baselines)."""
TAIL_MIN = 15
"""... and its window ends at least this long before the run's end."""


# --------------------------------------------------------------------------- customers


def varied_profiles(n_customers: int, seed: int = 0) -> list[CustomerProfile]:
    """Customers drawn from :data:`PROFILE_RANGES` (sizes 3-400 calls/hour at peak, log-uniform).

    DIDs: one per ~45 calls/hour of peak (+0-1), as the classic profiles, so that benign
    concurrency per DID stays below 20.
    """
    rng = random.Random(f"{seed}:profiles:variety")
    taken: set[str] = set()
    countries = [c for c, _ in _COUNTRY_WEIGHTS]
    cweights = [w for _, w in _COUNTRY_WEIGHTS]
    pr = PROFILE_RANGES
    out: list[CustomerProfile] = []
    for i in range(n_customers):
        country = rng.choices(countries, cweights)[0]
        peak = round(pr["calls_per_hour_peak"].draw(rng), 1)
        n_dids = 1 + int(peak // 45) + rng.randint(0, 1)
        dids = _did_block(rng, country, n_dids, taken)
        hours = (8, 19) if rng.random() < 0.8 else (9, 18)
        need_kbps = 90.0 * (peak / 3600.0 * 150.0 * 3 + 4)
        link = next((k for k in (2048.0, 5120.0, 10240.0, 20480.0, 51200.0, 102400.0) if k >= need_kbps), 204800.0)
        out.append(
            CustomerProfile(
                customer_id=f"cust-{i + 1:03d}",
                country=country,
                dids=dids,
                extensions=max(2, round(peak / 3 * rng.uniform(0.8, 1.2))),
                calls_per_hour_peak=peak,
                international_share=round(pr["international_share"].draw(rng), 3),
                answer_ratio=round(pr["answer_ratio"].draw(rng), 3),
                mean_talk_s=round(pr["mean_talk_s"].draw(rng), 1),
                inbound_share=round(pr["inbound_share"].draw(rng), 3),
                internal_share=round(pr["internal_share"].draw(rng), 3),
                business_start_hour=hours[0],
                business_end_hour=hours[1],
                codec="PCMA" if rng.random() < 0.85 else "G729",
                link_kbps=link,
                source_ip=_doc_ip(i),
                user_agent=rng.choice(_USER_AGENTS),
            )
        )
    return out


# --------------------------------------------------------------------------- time of day


def _local_hour(t: datetime, profile: CustomerProfile) -> datetime:
    from .benign import _local
    from .profiles import _UTC_OFFSET_MIN

    return _local(t, _UTC_OFFSET_MIN.get(profile.country, 60))


def time_class(local: datetime, profile: CustomerProfile) -> str:
    """``business``, ``evening`` or ``night`` for a local time (see :data:`TIME_CLASSES`)."""
    h = local.hour
    if h >= 23 or h < 7:
        return "night"
    if local.weekday() >= 5:
        return "evening"
    if profile.business_start_hour <= h < profile.business_end_hour:
        return "business"
    return "evening"


def place(
    rng: random.Random, start: datetime, minutes: int, duration_min: float, wanted: str, profile: CustomerProfile
) -> tuple[float, float]:
    """A start offset (minutes) in the run whose local time class is ``wanted``, and the duration.

    The window lies in ``[WARMUP_MIN, minutes - TAIL_MIN]`` where the run allows (shortened to fit);
    if no start of that class exists in the run, any start is taken.
    """
    lo = min(WARMUP_MIN, minutes // 4)
    hi_end = max(lo + 1, minutes - min(TAIL_MIN, minutes // 8))
    duration = min(duration_min, hi_end - lo)
    latest = hi_end - duration
    candidates = [lo + (latest - lo) * rng.random() for _ in range(400)]
    for offset in candidates:
        if time_class(_local_hour(start + timedelta(minutes=offset), profile), profile) == wanted:
            return round(offset, 2), round(duration, 2)
    return round(candidates[0], 2), round(duration, 2)


# --------------------------------------------------------------------------- episodes


def _lanes_talk(median: float) -> dict[str, float]:
    return {"talk_median_s": round(median, 1), "talk_min_s": round(median * 0.3, 1), "talk_max_s": round(median * 3, 1)}


def draw_params(kind: str, rng: random.Random, duration_min: float, profile: CustomerProfile) -> dict[str, Any]:
    """The parameters of one episode of ``kind``, drawn from :data:`EPISODE_RANGES`.

    Returns the :class:`~tollguard.simulate.Episode` ``params`` (keys of
    :data:`~tollguard.simulate.EPISODE_DEFAULTS`); rates are turned into call counts over
    ``duration_min``.
    """
    spec = EPISODE_RANGES[kind]
    d = {k: (v.draw(rng)) for k, v in spec.items() if k not in ("duration_min", "time_of_day")}
    hours = duration_min / 60.0
    p: dict[str, Any]
    if kind == "premium_destination":
        p = {
            "n_calls": 0,  # not used with lanes: each line calls back to back for the window
            "lanes": int(d["lanes"]),
            "n_destinations": int(d["n_destinations"]),
            "families": d["families"],
            "answer_ratio": round(d["answer_ratio"], 3),
            "gap_max_s": round(d["gap_max_s"], 1),
            "from_customer_pbx": d["from_customer_pbx"],
            **_lanes_talk(d["talk_median_s"]),
        }
    elif kind == "arbitrage_reward":
        n_dest = int(d["n_destinations"])
        p = {
            "n_calls": max(n_dest * 2, round(d["calls_per_hour"] * hours)),
            "n_destinations": n_dest,
            "billsec_s": round(d["billsec_s"], 1),
            "billsec_jitter_s": round(d["billsec_jitter_s"], 2),
            "n_clis": min(int(d["n_clis"]), len(profile.dids)),
            "answer_ratio": round(d["answer_ratio"], 3),
            "spacing_jitter": round(d["spacing_jitter"], 3),
            "dest_kind": d["dest_kind"],
            "calls_per_hour": round(d["calls_per_hour"], 1),
        }
    elif kind == "arbitrage_pumping":
        ranges = rng.sample(PUMPING_ORIGINS, int(d["n_ranges"]))
        p = {
            "n_calls": max(5, round(d["calls_per_hour"] * hours)),
            "origin_prefixes": ranges,
            "n_origins": max(len(ranges), int(d["n_origins"])),
            "answer_ratio": round(d["answer_ratio"], 3),
            "arrivals": d["arrivals"],
            "calls_per_hour": round(d["calls_per_hour"], 1),
            **_lanes_talk(d["talk_median_s"]),
        }
        p["talk_min_s"] = round(max(30.0, d["talk_median_s"] * 0.4), 1)
    elif kind == "arbitrage_high_cost":
        n_ranges = int(d["n_ranges"])
        p = {
            "talk_minutes": 0.0,  # not used with lanes: the attack runs for its window
            "lanes": int(d["lanes"]),
            "prefixes": rng.sample(IRSF_RANGES, n_ranges),
            "n_destinations": max(n_ranges, int(d["n_destinations"])),
            "answer_ratio": round(d["answer_ratio"], 3),
            "gap_max_s": round(d["gap_max_s"], 1),
            "talk_median_s": round(d["talk_median_s"], 1),
            "talk_min_s": 300.0,  # issue 9: calls of 5-60 min
            "talk_max_s": 3600.0,
        }
    elif kind == "autodialer":
        p = {
            "attempts_per_min": round(d["attempts_per_min"], 2),
            "destinations": d["destinations"],
            "pacing": d["pacing"],
            "batch_size": int(d["batch_size"]),
            "interval_jitter_s": round(d["interval_jitter_s"], 3),
            "answer_ratio": round(d["answer_ratio"], 3),
            "talk_min_s": round(d["talk_min_s"], 1),
            "talk_max_s": round(d["talk_max_s"], 1),
            "n_clis": min(int(d["n_clis"]), len(profile.dids)),
        }
        n = int(duration_min * d["attempts_per_min"])
        p["first_suffix"] = rng.randint(0, max(0, 9998 - n)) if n < 9999 else 0
    elif kind == "wangiri":
        countries = rng.sample(WANGIRI_COUNTRIES, int(d["n_countries"]))
        countries = [c for c in countries if c != profile.country] or ["GB" if profile.country != "GB" else "DE"]
        p = {
            "n_calls": max(10, min(3000, round(d["calls_per_min"] * duration_min))),
            "ring_min_s": round(d["ring_min_s"], 2),
            "ring_max_s": round(d["ring_max_s"], 2),
            "countries": countries,
            "n_clis": min(int(d["n_clis"]), len(profile.dids)),
            "answer_ratio": round(d["answer_ratio"], 3),
            "fresh_numbers": True,
            "calls_per_min": round(d["calls_per_min"], 2),
        }
    elif kind == "did_concurrency":
        p = {
            "n_concurrent": int(d["n_concurrent"]),
            "talk_min_s": round(d["talk_min_s"], 1),
            "talk_max_s": round(d["talk_max_s"], 1),
            "gap_max_s": round(d["gap_max_s"], 1),
        }
    elif kind == "bandwidth":
        p = {
            "n_concurrent": int(d["n_concurrent"]),
            "kbps_per_call": round(d["kbps_per_call"], 1),
            "mos_min": round(d["mos_min"], 2),
            "mos_max": round(d["mos_max"], 2),
            "talk_min_s": round(d["talk_min_s"], 1),
            "talk_max_s": round(d["talk_max_s"], 1),
        }
    elif kind == "volume_anomaly":
        p = {
            "factor": round(d["factor"], 2),
            "answer_ratio": round(d["answer_ratio"], 3),
            "talk_mean_s": round(d["talk_mean_s"], 1),
        }
    else:
        raise ValueError(f"unknown episode kind {kind!r}")
    return p


def draw_episode(
    kind: str, profile: CustomerProfile, start: datetime, minutes: int, rng: random.Random
) -> Episode:
    """One episode of ``kind`` on ``profile``'s customer: window and parameters drawn from the table."""
    spec = EPISODE_RANGES[kind]
    wanted = str(spec["time_of_day"].draw(rng))
    offset, duration = place(rng, start, minutes, spec["duration_min"].draw(rng), wanted, profile)
    params = draw_params(kind, rng, duration, profile)
    known = set(EPISODE_DEFAULTS[kind])
    drawn = {k: v for k, v in params.items() if k not in known}  # rates: kept for the label only
    drawn["time_of_day"] = wanted
    return Episode(kind, profile.customer_id, offset, duration, {k: v for k, v in params.items() if k in known}, drawn)


def draw_episodes(
    kinds: list[str],
    profiles: list[CustomerProfile],
    minutes: int,
    rng: random.Random,
    start: datetime | None = None,
    exclude: set[str] | None = None,
) -> list[Episode]:
    """One drawn episode per kind, each on a different customer picked at random.

    Customers in ``exclude`` are not used; with fewer customers than kinds they are reused.
    """
    start = start or datetime(2025, 3, 11, tzinfo=UTC)
    pool = [p for p in profiles if p.customer_id not in (exclude or set())] or list(profiles)
    order = rng.sample(pool, len(pool))
    return [draw_episode(kind, order[i % len(order)], start, minutes, rng) for i, kind in enumerate(kinds)]
