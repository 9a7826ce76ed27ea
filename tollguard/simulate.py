"""Seeded, labelled CDR traffic generator.

:func:`simulate` produces the calls of a set of customers (tenants of the cloud
PBX / SIP trunking service) over a stretch of time, in **arrival order** (a CDR
is written when its call ends, so records come sorted by ``end``), with optional
*episodes*: labelled injections of one of the patterns the detectors look for.
The same ``seed`` gives byte-identical output; records are streamed (only the
calls still in progress are held in memory), so a million CDRs cost little
memory.

Benign traffic follows business hours in the customer's local time (08-19 on
weekdays, little at night and at weekends), a realistic answer-seizure ratio
(ASR 0.55-0.7 outbound), lognormal talk times (mean 120-240 s), distinct valid
destinations, occasional toll-free and emergency (112) calls, and healthy media
counters on answered calls. Every public number is valid for libphonenumber.

Episode kinds (:data:`EPISODE_KINDS`) and their default sizes are documented on
:class:`Episode`; :func:`scenario` builds the presets that
``tollguard simulate --scenario`` takes (:data:`SCENARIOS`).

Examples
--------
>>> from datetime import UTC, datetime
>>> profiles = default_profiles(3, seed=7)
>>> sim = simulate(datetime(2025, 3, 11, tzinfo=UTC), 60, profiles,
...                [Episode("autodialer", profiles[0].customer_id, 10, 20)], seed=7)
>>> records = list(sim)
>>> sim.labels[0].n_calls == len(sim.labels[0].call_ids) == 600
True
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from tollguard.cdr import CallDetailRecord, Direction, Disposition

__all__ = [
    "EPISODE_KINDS",
    "EPISODE_DEFAULTS",
    "HIGH_COST_PREFIXES",
    "HIGH_RISK_PREFIXES",
    "NEW_COUNTRY_PREFIXES",
    "SCENARIOS",
    "CustomerProfile",
    "Episode",
    "EpisodeLabel",
    "Simulation",
    "customers_rules",
    "default_profiles",
    "run_scenario",
    "scenario",
    "simulate",
    "write",
    "write_labels",
    "write_rules",
]

# --------------------------------------------------------------------------- constants

EPISODE_KINDS: tuple[str, ...] = (
    "premium_destination",
    "arbitrage_reward",
    "arbitrage_pumping",
    "arbitrage_high_cost",
    "autodialer",
    "wangiri",
    "did_concurrency",
    "bandwidth",
    "volume_anomaly",
)
"""The names of the episode kinds, exactly as labels and scenarios spell them."""

SCENARIOS: tuple[str, ...] = ("benign", "all", *EPISODE_KINDS)
"""Preset names accepted by :func:`scenario` (and ``tollguard simulate --scenario``)."""

HIGH_RISK_PREFIXES: tuple[str, ...] = ("+881", "+882", "+979")
"""Non-geographic high-risk prefixes (satellite, international networks, international premium)."""

HIGH_COST_PREFIXES: tuple[str, ...] = ("+239", "+225", "+53")
"""High-cost international destinations used by ``arbitrage_high_cost`` (São Tomé, Côte d'Ivoire, Cuba)."""

NEW_COUNTRY_PREFIXES: tuple[str, ...] = ("+62", "+63", "+84")
"""Destinations of ``volume_anomaly`` that benign traffic never calls (Indonesia, Philippines, Viet Nam)."""

EPISODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "premium_destination": {
        "n_calls": 40,
        "n_destinations": 6,
        "answer_ratio": 0.8,
        "talk_median_s": 420.0,
        "talk_min_s": 120.0,
        "talk_max_s": 1800.0,
    },
    "arbitrage_reward": {
        "n_calls": 150,
        "n_destinations": 2,
        "billsec_s": 61.0,
        "billsec_jitter_s": 1.0,
    },
    "arbitrage_pumping": {
        "n_calls": 200,
        "origin_prefixes": ["+37126", "+447624"],
        "n_origins": 60,
        "answer_ratio": 0.95,
        "talk_median_s": 180.0,
        "talk_min_s": 120.0,
        "talk_max_s": 360.0,
    },
    "arbitrage_high_cost": {
        "talk_minutes": 300.0,
        "n_destinations": 10,
        "answer_ratio": 0.9,
        "talk_min_s": 420.0,
        "talk_max_s": 900.0,
    },
    "autodialer": {
        "attempts_per_min": 30.0,
        "interval_jitter_s": 0.05,
        "answer_ratio": 0.12,
        "talk_min_s": 8.0,
        "talk_max_s": 20.0,
        "first_suffix": 1000,
    },
    "wangiri": {
        "n_calls": 300,
        "ring_min_s": 1.0,
        "ring_max_s": 3.0,
        "countries": ["GB", "DE", "FR", "ES", "CH", "US"],
    },
    "did_concurrency": {
        "n_concurrent": 24,
        "talk_min_s": 300.0,
        "talk_max_s": 900.0,
        "gap_max_s": 30.0,
    },
    "bandwidth": {
        "n_concurrent": 6,
        "kbps_per_call": 40.0,
        "mos_min": 2.3,
        "mos_max": 2.8,
        "talk_min_s": 120.0,
        "talk_max_s": 480.0,
    },
    "volume_anomaly": {
        "factor": 5.0,
        "answer_ratio": 0.6,
        "talk_mean_s": 150.0,
    },
}
"""Default ``params`` of each episode kind (any key may be overridden in :attr:`Episode.params`)."""

_DEFAULT_DURATION_MIN: dict[str, int] = {
    "premium_destination": 20,
    "arbitrage_reward": 60,
    "arbitrage_pumping": 60,
    "arbitrage_high_cost": 60,
    "autodialer": 20,
    "wangiri": 20,
    "did_concurrency": 60,
    "bandwidth": 60,
    "volume_anomaly": 120,
}

_EXPECTED_DETECTOR: dict[str, str | None] = {
    "premium_destination": "premium_destination",
    "arbitrage_reward": "arbitrage",
    "arbitrage_pumping": "arbitrage",
    "arbitrage_high_cost": "arbitrage",
    "autodialer": "autodialer",
    "wangiri": "autodialer",
    "did_concurrency": "did_concurrency",
    "bandwidth": "bandwidth",
    "volume_anomaly": "anomaly",
}

_SCOPE_KIND: dict[str, str] = {
    "premium_destination": "account",
    "arbitrage_reward": "cli",
    "arbitrage_pumping": "did",
    "arbitrage_high_cost": "account",
    "autodialer": "cli",
    "wangiri": "cli",
    "did_concurrency": "did",
    "bandwidth": "account",
    "volume_anomaly": "account",
}

# Where each kind sits in the "all" scenario (start as a fraction of a day from the run's start,
# i.e. 00:00 UTC for a run that starts at midnight): night for premium / wangiri / anomaly.
_ALL_SLOTS: dict[str, float] = {
    "volume_anomaly": 60 / 1440,
    "premium_destination": 120 / 1440,
    "wangiri": 240 / 1440,
    "autodialer": 600 / 1440,
    "did_concurrency": 660 / 1440,
    "arbitrage_reward": 840 / 1440,
    "bandwidth": 900 / 1440,
    "arbitrage_high_cost": 1020 / 1440,
    "arbitrage_pumping": 1200 / 1440,
}

_RTP_HEADER_BYTES = 12
_PACKETS_PER_S = 50  # 20 ms packetisation
_PAYLOAD_BYTES = {"PCMA": 160, "PCMU": 160, "G711A": 160, "G711U": 160, "G729": 20}
_EMERGENCY = "112"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# --------------------------------------------------------------------------- number pools

_FIXED = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_MOBILE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_ANY: frozenset[int] = frozenset()

# (region, kind) -> (allowed types (empty = any valid), region the number must belong to or None,
#                    ((E.164 prefix, random digits appended), ...), pool size)
_POOL_SPECS: dict[tuple[str, str], tuple[frozenset[int], str | None, tuple[tuple[str, int], ...], int]] = {
    ("IT", "fixed"): (
        _FIXED,
        "IT",
        (
            ("+3902", 8),
            ("+3906", 8),
            ("+39011", 7),
            ("+39010", 7),
            ("+39051", 7),
            ("+39055", 7),
            ("+39081", 7),
            ("+39049", 7),
            ("+39045", 7),
            ("+39091", 7),
            ("+39070", 7),
            ("+39080", 7),
        ),
        1500,
    ),
    ("IT", "mobile"): (
        _MOBILE,
        "IT",
        (
            ("+39320", 7),
            ("+39328", 7),
            ("+39333", 7),
            ("+39338", 7),
            ("+39340", 7),
            ("+39347", 7),
            ("+39348", 7),
            ("+39349", 7),
            ("+39366", 7),
            ("+39380", 7),
            ("+39389", 7),
            ("+39392", 7),
        ),
        1500,
    ),
    ("IT", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "IT", (("+39800", 6),), 100),
    ("DE", "fixed"): (
        _FIXED,
        "DE",
        (("+4930", 8), ("+4989", 8), ("+4940", 8), ("+4969", 8), ("+49221", 7), ("+49711", 7)),
        800,
    ),
    ("DE", "mobile"): (
        _MOBILE,
        "DE",
        (("+49151", 8), ("+49160", 7), ("+49170", 7), ("+49171", 7), ("+49176", 8)),
        800,
    ),
    ("DE", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "DE", (("+49800", 7),), 100),
    ("GB", "fixed"): (
        _FIXED,
        "GB",
        (("+44207", 7), ("+44208", 7), ("+44161", 7), ("+44121", 7), ("+44131", 7), ("+44117", 7)),
        800,
    ),
    ("GB", "mobile"): (_MOBILE, "GB", (("+4477", 8), ("+4478", 8), ("+4479", 8), ("+4475", 8)), 800),
    ("GB", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "GB", (("+44800", 7),), 100),
    ("FR", "fixed"): (_FIXED, "FR", (("+331", 8), ("+332", 8), ("+333", 8), ("+334", 8), ("+335", 8)), 800),
    ("FR", "mobile"): (_MOBILE, "FR", (("+336", 8), ("+337", 8)), 800),
    ("FR", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "FR", (("+33800", 6),), 100),
    ("ES", "fixed"): (_FIXED, "ES", (("+34911", 6), ("+34932", 6), ("+34963", 6)), 400),
    ("ES", "mobile"): (_MOBILE, "ES", (("+346", 8),), 400),
    ("US", "fixed"): (
        _FIXED,
        "US",
        (("+1212", 7), ("+1415", 7), ("+1312", 7), ("+1617", 7), ("+1305", 7)),
        400,
    ),
    ("US", "mobile"): (_MOBILE, "US", (("+1646", 7), ("+1917", 7), ("+1650", 7), ("+1773", 7)), 400),
    ("CH", "fixed"): (_FIXED, "CH", (("+4144", 7), ("+4122", 7), ("+4131", 7)), 400),
    ("CH", "mobile"): (_MOBILE, "CH", (("+4179", 7), ("+4178", 7), ("+4176", 7)), 400),
    # episode material
    ("XX", "premium"): (
        _ANY,
        None,
        (("+39899", 6), ("+39848", 6), ("+44909", 7), ("+44871", 7), ("+8816", 8), ("+8823", 9), ("+979", 9)),
        200,
    ),
    ("XX", "high_cost"): (
        frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE}),
        None,
        (("+23998", 5), ("+22507", 8), ("+535", 7)),
        200,
    ),
    ("XX", "new_country"): (_MOBILE, None, (("+62812", 8), ("+639", 9), ("+849", 8)), 900),
}

_INTL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("DE", 0.2),
    ("FR", 0.15),
    ("GB", 0.2),
    ("ES", 0.15),
    ("US", 0.12),
    ("CH", 0.1),
    ("IT", 0.08),
)

# Prefixes of customers' DIDs (geographic fixed-line numbers) per country.
_DID_PREFIXES: dict[str, tuple[tuple[str, int], ...]] = {
    "IT": (("+3902", 8), ("+3902", 8), ("+3906", 8), ("+3906", 8), ("+39011", 7), ("+39051", 7)),
    "DE": (("+4930", 8), ("+4989", 8), ("+4940", 8)),
    "GB": (("+44207", 7), ("+44161", 7)),
    "FR": (("+331", 8), ("+334", 8)),
}

_COUNTRY_WEIGHTS: tuple[tuple[str, float], ...] = (("IT", 0.70), ("DE", 0.12), ("GB", 0.10), ("FR", 0.08))

# Standard UTC offset (minutes) of each customer country; all follow the EU summer-time rule.
_UTC_OFFSET_MIN: dict[str, int] = {"IT": 60, "DE": 60, "FR": 60, "ES": 60, "CH": 60, "GB": 0}

_USER_AGENTS: tuple[str, ...] = (
    "Asterisk PBX 18.20.0",
    "Asterisk PBX 20.5.2",
    "FPBX-16.0.40.7(18.20.0)",
    "3CXPhoneSystem 18.0.9.20",
    "Yealink SIP-T46U 108.86.0.20",
    "FreeSWITCH-mod_sofia/1.10.11-release",
)
_ATTACKER_UA = "sipcli/v1.8"


@dataclass(frozen=True, slots=True)
class _Num:
    """A pool number: E.164 form, national dialling digits, region."""

    e164: str
    national: str
    region: str


def _parse_valid(e164: str, types: frozenset[int], region: str | None) -> _Num | None:
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    if types and phonenumbers.number_type(num) not in types:
        return None
    reg = phonenumbers.region_code_for_number(num) or "001"
    if region is not None and reg != region:
        return None
    national = "".join(
        ch for ch in phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL) if ch.isdigit()
    )
    return _Num(e164, national, reg)


def _random_digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


@cache
def _pool(region: str, kind: str) -> tuple[_Num, ...]:
    """Valid numbers of one (region, kind), built once per process from a fixed seed."""
    types, owner, prefixes, size = _POOL_SPECS[(region, kind)]
    rng = random.Random(f"tollguard-pool:{region}:{kind}")
    seen: set[str] = set()
    out: list[_Num] = []
    attempts = 0
    while len(out) < size:
        attempts += 1
        if attempts > size * 50:
            raise RuntimeError(f"number pool {region}/{kind}: too few valid numbers in its prefixes")
        prefix, n_digits = prefixes[len(out) % len(prefixes)] if attempts % 7 else rng.choice(prefixes)
        e164 = prefix + _random_digits(rng, n_digits)
        if e164 in seen:
            continue
        num = _parse_valid(e164, types, owner)
        if num is not None:
            seen.add(e164)
            out.append(num)
    return tuple(out)


def _dial(num: _Num, from_region: str) -> str:
    """Digits a PBX in ``from_region`` dials for ``num`` (national form, or ``00`` + E.164)."""
    if num.region == from_region:
        return num.national
    return "00" + num.e164[1:]


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class CustomerProfile:
    """One tenant of the service and the shape of its normal traffic.

    Parameters
    ----------
    customer_id : str
        Account code, e.g. ``"cust-001"``.
    country : str
        ISO 3166 region of the customer (``"IT"``, ``"DE"``, ``"GB"``, ``"FR"``); sets its local
        time, its national destinations and its dialling format.
    dids : tuple of str
        The customer's DIDs (E.164, valid FIXED_LINE numbers, a consecutive block); ``dids[0]``
        is the main number: it carries min(1, 1.2 / len(dids)) of the external calls, the other
        DIDs share the rest.
    extensions : int
        Number of PBX extensions (internal numbers ``200`` .. ``200 + extensions - 1``).
    calls_per_hour_peak : float
        Calls per hour (all directions) in business hours on a weekday.
    international_share : float
        Share of outbound calls to foreign destinations.
    answer_ratio : float
        Answer-seizure ratio of outbound calls (inbound: ``+0.05``; internal calls: 0.8).
    mean_talk_s : float
        Mean talk time (billsec) of answered external calls, lognormal (sigma 0.9).
    inbound_share, internal_share : float
        Shares of inbound and internal calls; the rest is outbound.
    business_start_hour, business_end_hour : int
        Local business hours on weekdays (e.g. 8 and 19).
    codec : str
        ``"PCMA"`` (G.711 A-law) or ``"G729"``.
    link_kbps : float
        Bandwidth of the customer's Internet link (kbps), at least 60 kbps per simultaneous call.
    source_ip : str
        Public address of the customer's PBX / phones (documentation ranges).
    user_agent : str
        SIP User-Agent of the customer's PBX or phones.
    """

    customer_id: str
    country: str
    dids: tuple[str, ...]
    extensions: int
    calls_per_hour_peak: float
    international_share: float
    answer_ratio: float
    mean_talk_s: float
    inbound_share: float = 0.38
    internal_share: float = 0.1
    business_start_hour: int = 8
    business_end_hour: int = 19
    codec: str = "PCMA"
    link_kbps: float = 10240.0
    source_ip: str = "192.0.2.10"
    user_agent: str = "Asterisk PBX 18.20.0"


def _doc_ip(index: int) -> str:
    nets = ("192.0.2", "198.51.100", "203.0.113")
    net = nets[(index // 180) % 3]
    return f"{net}.{10 + index % 180}"


def _did_block(rng: random.Random, country: str, n: int, taken: set[str]) -> tuple[str, ...]:
    prefixes = _DID_PREFIXES[country]
    for _ in range(1000):
        prefix, n_digits = rng.choice(prefixes)
        base = int(_random_digits(rng, n_digits - 2) + "00")  # blocks start at ...00
        numbers = [f"{prefix}{str(base + i).zfill(n_digits)}" for i in range(n + 1)]
        if any(num in taken for num in numbers):
            continue
        if all(_parse_valid(num, _FIXED, country) is not None for num in numbers):
            taken.update(numbers)  # n + 1: the spare number after the block is kept free too
            return tuple(numbers[:n])
    raise RuntimeError(f"could not draw a DID block for {country}")


def default_profiles(n_customers: int, seed: int = 0) -> list[CustomerProfile]:
    """Realistic customers: mostly Italian, some German, British and French.

    Parameters
    ----------
    n_customers : int
        Number of customers (``cust-001`` ... ``cust-NNN``); 0 gives an empty list.
    seed : int
        Seed; the same seed gives the same profiles.

    Returns
    -------
    list of CustomerProfile
        Peak rates 8-180 calls/hour (lognormal around 40), 1-6 DIDs each (one DID per ~45
        calls/hour of peak), so that benign concurrency per DID stays far below 20.
    """
    if n_customers < 0:
        raise ValueError(f"n_customers must be >= 0, got {n_customers}")
    rng = random.Random(f"{seed}:profiles")
    taken: set[str] = set()
    countries = [c for c, _ in _COUNTRY_WEIGHTS]
    cweights = [w for _, w in _COUNTRY_WEIGHTS]
    profiles: list[CustomerProfile] = []
    for i in range(n_customers):
        country = rng.choices(countries, cweights)[0]
        peak = round(min(180.0, max(8.0, rng.lognormvariate(math.log(40.0), 0.7))), 1)
        n_dids = 1 + int(peak // 45) + rng.randint(0, 1)
        dids = _did_block(rng, country, n_dids, taken)
        extensions = max(2, round(peak / 3 * rng.uniform(0.8, 1.2)))
        hours = (8, 19) if rng.random() < 0.8 else (9, 18)
        codec = "PCMA" if rng.random() < 0.85 else "G729"
        # expected peak concurrency with a wide margin, then a common access-link size
        need_kbps = 90.0 * (peak / 3600.0 * 150.0 * 3 + 4)
        link = next(k for k in (2048.0, 5120.0, 10240.0, 20480.0, 51200.0, 102400.0) if k >= need_kbps)
        profiles.append(
            CustomerProfile(
                customer_id=f"cust-{i + 1:03d}",
                country=country,
                dids=dids,
                extensions=extensions,
                calls_per_hour_peak=peak,
                international_share=round(rng.uniform(0.03, 0.2), 3),
                answer_ratio=round(rng.uniform(0.55, 0.7), 3),
                mean_talk_s=round(rng.uniform(120.0, 240.0), 1),
                inbound_share=round(rng.uniform(0.3, 0.45), 3),
                internal_share=round(rng.uniform(0.05, 0.15), 3),
                business_start_hour=hours[0],
                business_end_hour=hours[1],
                codec=codec,
                link_kbps=link,
                source_ip=_doc_ip(i),
                user_agent=rng.choice(_USER_AGENTS),
            )
        )
    return profiles


# --------------------------------------------------------------------------- episodes and labels


@dataclass(frozen=True)
class Episode:
    """A labelled pattern injected into one customer's traffic.

    Parameters
    ----------
    kind : str
        One of :data:`EPISODE_KINDS`:

        ``premium_destination``
            ``n_calls`` (40) calls from the customer's DIDs to ``n_destinations`` (6) premium-rate /
            shared-cost / high-risk numbers (IT 899, IT 848, GB 909, GB 871, +881 6, +882 3, +979),
            uniform over the window; ASR 0.8; talk lognormal median 420 s clipped to 120-1800 s;
            from an unknown address (203.0.113.2xx) with User-Agent ``sipcli/v1.8``.
        ``arbitrage_reward``
            ``n_calls`` (150) calls from one CLI to ``n_destinations`` (2) national mobile numbers,
            evenly spaced (window / n_calls, +-10 %), all answered, billsec 61 +- 1 s.
        ``arbitrage_pumping``
            ``n_calls`` (200) inbound calls to one DID from ``n_origins`` (60) numbers in the ranges
            +371 26 (LV mobile) and +44 7624 (IM mobile), one call at a random point of each of
            ``n_calls`` equal slots of the window; ASR 0.95; talk
            lognormal median 180 s clipped to 120-360 s (peak concurrency on the DID stays < 20).
        ``arbitrage_high_cost``
            Calls to ``n_destinations`` (10) numbers in +239 / +225 / +53 until ``talk_minutes``
            (300) minutes of talk; starts uniform over the window; ASR 0.9; talk 420-900 s.
        ``autodialer``
            ``attempts_per_min`` (30) attempts from one CLI, one every 60/rate s (+- N(0, 0.05 s)),
            to sequential national fixed numbers (suffix 1000, 1001, ...); ASR 0.12, talk 8-20 s;
            unanswered: 80 % NO ANSWER (cause 19, ring 10-20 s), 15 % BUSY (17), 5 % FAILED (1).
        ``wangiri``
            ``n_calls`` (300) calls from one CLI to distinct mobile numbers of ``countries``,
            Poisson arrivals over the window, ring 1-3 s, all NO ANSWER (cause 16).
        ``did_concurrency``
            ``n_concurrent`` (24) back-to-back inbound "lanes" on a dedicated DID (the number after
            the customer's DID block): the peak of simultaneous calls on it is exactly
            ``n_concurrent``; talk 300-900 s, gaps 0-30 s, all answered.
        ``bandwidth``
            ``n_concurrent`` (6) lanes of G.711 calls whose received RTP throughput is
            ``kbps_per_call`` (40) x U(0.9, 1.0) kbps (needs 68.8), i.e. ~42-48 % loss, MOS 2.3-2.8;
            the customer's benign calls are suppressed during the window.
        ``volume_anomaly``
            Outbound calls at ``factor`` (5) x the customer's peak outbound rate to mobile numbers in
            +62 / +63 / +84 (never called otherwise), Poisson arrivals, ASR 0.6, talk mean 150 s.
    customer_id : str
        The customer (must be among the simulated profiles).
    start_offset_min : float
        Start of the window, minutes after the simulation start.
    duration_min : float
        Length of the window in minutes (calls start inside it; they may end after it).
    params : dict
        Overrides of :data:`EPISODE_DEFAULTS` for this kind.
    """

    kind: str
    customer_id: str
    start_offset_min: float
    duration_min: float
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EPISODE_KINDS:
            raise ValueError(
                f"The 'kind' parameter of Episode must be one of {list(EPISODE_KINDS)}. "
                f"Got {self.kind!r} instead."
            )
        if self.start_offset_min < 0:
            raise ValueError(f"start_offset_min must be >= 0, got {self.start_offset_min}")
        if self.duration_min <= 0:
            raise ValueError(f"duration_min must be > 0, got {self.duration_min}")
        unknown = set(self.params) - set(EPISODE_DEFAULTS[self.kind])
        if unknown:
            raise ValueError(
                f"unknown params for {self.kind}: {sorted(unknown)}; "
                f"allowed: {sorted(EPISODE_DEFAULTS[self.kind])}"
            )

    def effective_params(self) -> dict[str, Any]:
        """Defaults of the kind updated with :attr:`params`."""
        return {**EPISODE_DEFAULTS[self.kind], **self.params}


@dataclass
class EpisodeLabel:
    """Ground truth for one episode.

    ``n_calls``, ``start``, ``end``, ``scope`` are known as soon as the simulation is built;
    ``call_ids`` fills up while the records are iterated (ids are given in arrival order) and is
    complete when :meth:`Simulation.records` is exhausted.
    """

    kind: str
    customer_id: str
    detector: str | None
    scope: dict[str, str]
    start: datetime
    end: datetime
    n_calls: int
    params: dict[str, Any]
    call_ids: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ISO 8601 times), one line of :func:`write_labels`."""
        return {
            "kind": self.kind,
            "customer_id": self.customer_id,
            "detector": self.detector,
            "scope": dict(self.scope),
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
            "n_calls": self.n_calls,
            "call_ids": list(self.call_ids),
            "params": self.params,
        }


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
        "p",
        "index",
        "cid",
        "dids",
        "did_nat",
        "cli_cum",
        "did_cum",
        "nat_fixed",
        "nat_mobile",
        "toll_free",
        "intl_pools",
        "intl_cum",
        "ext_lo",
        "ext_n",
        "p_in",
        "p_int",
        "asr_out",
        "asr_in",
        "mu",
        "codec",
        "ip",
        "ua",
        "out_per_hour",
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


# --------------------------------------------------------------------------- episode generators


_EpisodeOut = tuple[list[_Call], dict[str, str]]


def _lognorm_median(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.lognormvariate(math.log(median), sigma)))


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


# --------------------------------------------------------------------------- the simulation


_fromtimestamp = datetime.fromtimestamp


def _dt(ms: int) -> datetime:
    # exact for whole milliseconds (float error << 0.5 us for any date before year 2200)
    return _fromtimestamp(ms / 1000, UTC)


def _build(call_id: str, t: _Call) -> CallDetailRecord:
    return _make_record(_build_kw(call_id, t))


def _build_kw(call_id: str, t: _Call) -> dict[str, Any]:
    """All fields of the record, in the model's field order."""
    start_ms, answer_ms, end_ms = t[0], t[1], t[2]
    media = t[15]
    if answer_ms is not None:
        answer: datetime | None = _dt(answer_ms)
        billsec = (end_ms - answer_ms) / 1000
    else:
        answer = None
        billsec = 0.0
    if media is not None:
        in_b, out_b, in_p, out_p, lost, mos = media
        media_start = answer
    else:
        in_b = out_b = in_p = out_p = lost = mos = media_start = None
    return {
        "call_id": call_id,
        "customer_id": t[3],
        "direction": t[4],
        "caller": t[5],
        "callee": t[6],
        "caller_raw": t[7],
        "callee_raw": t[8],
        "did": t[9],
        "start": _dt(start_ms),
        "answer": answer,
        "end": _dt(end_ms),
        "duration_s": (end_ms - start_ms) / 1000,
        "billsec_s": billsec,
        "disposition": t[10],
        "hangup_cause": t[11],
        "source_ip": t[12],
        "user_agent": t[13],
        "codec": t[14],
        "rtp_in_bytes": in_b,
        "rtp_out_bytes": out_b,
        "rtp_in_packets": in_p,
        "rtp_out_packets": out_p,
        "rtp_lost_packets": lost,
        "media_start": media_start,
        "mos": mos,
        "leg_id": None,
        "legs": 1,
    }


# Records are consistent by construction, so the hot path skips pydantic validation (it would halve
# the generation speed): what ``model_construct`` does, without its per-field Python loop. A
# self-check at import compares it with the validating constructor and falls back to validation on
# any difference (e.g. a future pydantic that changes its model internals or a new model field).
_FIELDS = tuple(CallDetailRecord.model_fields)
_FIELDS_SET = set(_FIELDS)
_new_object = object.__new__
_set_attr = object.__setattr__


def _construct_trusted(values: dict[str, Any]) -> CallDetailRecord:
    rec = _new_object(CallDetailRecord)
    _set_attr(rec, "__dict__", values)
    _set_attr(rec, "__pydantic_fields_set__", _FIELDS_SET.copy())
    _set_attr(rec, "__pydantic_extra__", None)
    _set_attr(rec, "__pydantic_private__", None)
    return rec


def _construct_validated(values: dict[str, Any]) -> CallDetailRecord:
    return CallDetailRecord(**values)


def _trusted_construct_works() -> bool:
    t0 = 1_741_651_200_000
    sample: _Call = (
        t0,
        t0 + 4_000,
        t0 + 64_000,
        "cust-001",
        _OUT,
        "+390212345678",
        "+390612345678",
        "0212345678",
        "0612345678",
        "+390212345678",
        _ANS,
        16,
        "192.0.2.10",
        "Asterisk PBX 18.20.0",
        "PCMA",
        (516_000.0, 516_000.0, 3000.0, 3000.0, 0.0, 4.3),
        -1,
    )
    try:
        values = _build_kw("sim-check", sample)
        if tuple(values) != _FIELDS:
            return False
        slow = _construct_validated(dict(values))
        fast = _construct_trusted(values)
        return bool(
            fast == slow
            and fast.model_dump_json() == slow.model_dump_json()
            and fast.model_fields_set == slow.model_fields_set
            and CallDetailRecord.model_validate(fast.model_dump()) == fast
            and fast.model_copy(update={"did": None}) == slow.model_copy(update={"did": None})
        )
    except Exception:  # noqa: BLE001 - any failure means: keep validating
        return False


_make_record = _construct_trusted if _trusted_construct_works() else _construct_validated


class Simulation:
    """A built simulation: :meth:`records` streams the CDRs, :attr:`labels` holds the ground truth.

    Iterating the object is the same as iterating :meth:`records`. Each call of :meth:`records`
    regenerates the same stream from the seed (and refills the labels' ``call_ids``).
    """

    def __init__(
        self,
        start: datetime,
        minutes: int,
        profiles: list[CustomerProfile],
        episodes: list[Episode],
        seed: int,
        disorder_s: float = 0.0,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        if disorder_s < 0:
            raise ValueError(f"disorder_s must be >= 0, got {disorder_s}")
        self.start = start.astimezone(UTC)
        self.minutes = int(minutes)
        self.profiles = list(profiles)
        self.episodes = list(episodes)
        self.seed = seed
        self.disorder_s = float(disorder_s)
        ids = [p.customer_id for p in self.profiles]
        if len(set(ids)) != len(ids):
            raise ValueError("customer ids of the profiles must be unique")
        self._custs = [_Cust(p, i) for i, p in enumerate(self.profiles)]
        by_id = {c.cid: c for c in self._custs}
        self._start_ms = (self.start - _EPOCH) // _MS
        self._end_ms = self._start_ms + self.minutes * 60_000
        self._episode_calls: list[_Call] = []
        self._suppress: dict[str, list[tuple[int, int]]] = {}
        self.labels: list[EpisodeLabel] = []
        for j, ep in enumerate(self.episodes):
            if ep.customer_id not in by_id:
                raise ValueError(f"episode {j} ({ep.kind}) names unknown customer {ep.customer_id!r}")
            c = by_id[ep.customer_id]
            t0 = self._start_ms + int(ep.start_offset_min * 60_000)
            span = max(1, min(int(ep.duration_min * 60_000), self._end_ms - t0))
            prm = ep.effective_params()
            rng = random.Random(f"{seed}:episode:{j}:{ep.kind}:{ep.customer_id}")
            calls: list[_Call]
            if t0 >= self._end_ms:
                calls, scope = [], {"kind": _SCOPE_KIND[ep.kind], "value": c.cid}
            else:
                calls, scope = _GENERATORS[ep.kind](rng, c, t0, span, prm, j)
            calls = [x for x in calls if self._start_ms <= x[0] < self._end_ms]
            if ep.kind == "bandwidth":
                self._suppress.setdefault(c.cid, []).append((t0, t0 + span))
            self._episode_calls.extend(calls)
            self.labels.append(
                EpisodeLabel(
                    kind=ep.kind,
                    customer_id=c.cid,
                    detector=_EXPECTED_DETECTOR[ep.kind],
                    scope=scope,
                    start=_dt(min((x[0] for x in calls), default=t0)),
                    end=_dt(max((x[2] for x in calls), default=t0)),
                    n_calls=len(calls),
                    params={**prm, "start_offset_min": ep.start_offset_min, "duration_min": span / 60_000},
                )
            )
        self._episode_calls.sort(key=lambda x: (x[0], x[2], x[16]))

    def __iter__(self) -> Iterator[CallDetailRecord]:
        return self.records()

    def _groups(self) -> list[tuple[int, int, int, list[_Cust], list[float], float]]:
        keyed: dict[tuple[int, int, int], list[_Cust]] = {}
        for c in self._custs:
            key = (_UTC_OFFSET_MIN.get(c.p.country, 60), c.p.business_start_hour, c.p.business_end_hour)
            keyed.setdefault(key, []).append(c)
        groups = []
        for (off, sh, eh), custs in sorted(keyed.items()):
            rates = [c.p.calls_per_hour_peak for c in custs]
            total = sum(rates)
            if total <= 0:
                continue
            groups.append((off, sh, eh, custs, _cum(rates), total))
        return groups

    def records(self) -> Iterator[CallDetailRecord]:
        """Yield the CDRs in arrival order (by ``end``, plus ``disorder_s`` of jitter when set)."""
        for lab in self.labels:
            lab.call_ids.clear()
        rng = random.Random(f"{self.seed}:benign")
        jitter_rng = random.Random(f"{self.seed}:disorder")
        disorder_ms = self.disorder_s * 1000
        prefix = f"sim-{self.seed}-"
        labels = self.labels
        groups = self._groups()
        suppress = self._suppress
        pending = self._episode_calls
        pi = 0
        heap: list[tuple[float, int, _Call]] = []
        seq = 0
        n_out = 0
        push = heapq.heappush
        pop = heapq.heappop
        expo = rng.expovariate
        rnd = rng.random
        for m in range(self.minutes):
            t_ms = self._start_ms + m * 60_000
            # everything that ends (plus jitter) by now is final: later calls start at or after t_ms
            while heap and heap[0][0] <= t_ms:
                call = pop(heap)[2]
                n_out += 1
                cid = f"{prefix}{n_out:08d}"
                if call[16] >= 0:
                    labels[call[16]].call_ids.append(cid)
                yield _build(cid, call)
            minute_end = t_ms + 60_000
            while pi < len(pending) and pending[pi][0] < minute_end:
                call = pending[pi]
                pi += 1
                key = call[2] + (jitter_rng.random() * disorder_ms if disorder_ms else 0)
                push(heap, (key, seq, call))
                seq += 1
            if not groups:
                continue
            utc = _dt(t_ms)
            for off, sh, eh, custs, cum, total in groups:
                rate_per_s = total * _activity(_local(utc, off), sh, eh) / 3600.0
                if rate_per_s <= 0:
                    continue
                s = expo(rate_per_s)
                while s < 60.0:
                    c = custs[_pick(cum, rnd())]
                    call = _benign_call(rng, c, t_ms + int(s * 1000))
                    s += expo(rate_per_s)
                    if suppress and c.cid in suppress and any(a <= call[0] < b for a, b in suppress[c.cid]):
                        continue
                    key = call[2] + (jitter_rng.random() * disorder_ms if disorder_ms else 0)
                    push(heap, (key, seq, call))
                    seq += 1
        while pi < len(pending):  # episode calls are already clipped to the run; defensive
            call = pending[pi]
            pi += 1
            push(heap, (call[2], seq, call))
            seq += 1
        while heap:
            call = pop(heap)[2]
            n_out += 1
            cid = f"{prefix}{n_out:08d}"
            if call[16] >= 0:
                labels[call[16]].call_ids.append(cid)
            yield _build(cid, call)


def simulate(
    start: datetime,
    minutes: int,
    profiles: list[CustomerProfile],
    episodes: list[Episode] | None = None,
    seed: int = 0,
    disorder_s: float = 0.0,
) -> Simulation:
    """Simulate ``minutes`` of traffic of ``profiles`` with the given episodes.

    Parameters
    ----------
    start : datetime
        Start of the run, timezone-aware (converted to UTC).
    minutes : int
        Length of the run; calls *start* in ``[start, start + minutes)`` and are all emitted
        (calls still in progress at the end are emitted with their real end).
    profiles : list of CustomerProfile
        The customers (see :func:`default_profiles`).
    episodes : list of Episode, optional
        Labelled patterns to inject; episode calls outside the run are dropped.
    seed : int
        Seed of everything random; same inputs and seed give identical records and labels.
    disorder_s : float
        Arrival jitter: each record is emitted as if it arrived ``U(0, disorder_s)`` seconds after
        its ``end``. 0 (the default) gives records sorted by ``end``.

    Returns
    -------
    Simulation
        Iterable of :class:`~tollguard.cdr.CallDetailRecord` (``.records()``), with ``.labels``
        (one :class:`EpisodeLabel` per episode, in the order of ``episodes``). Call ids are
        ``sim-{seed}-{n:08d}``, ``n`` = 1-based arrival index.
    """
    return Simulation(start, minutes, profiles, list(episodes or []), seed, disorder_s)


# --------------------------------------------------------------------------- scenarios


def scenario(name: str, profiles: list[CustomerProfile], minutes: int = 1440) -> list[Episode]:
    """The episodes of a preset scenario.

    Parameters
    ----------
    name : str
        ``"benign"`` (no episode), ``"all"`` (one episode of each kind, on customers
        ``profiles[0]``, ``profiles[1]``, ... in the order of :data:`EPISODE_KINDS`, wrapping when
        there are fewer customers than kinds), or one kind name (one episode on ``profiles[0]``).
    profiles : list of CustomerProfile
        The customers of the run.
    minutes : int
        Length of the run. Episode starts are placed as fractions of a day (for a run that starts
        at 00:00 UTC: volume_anomaly 01:00, premium 02:00, wangiri 04:00, autodialer 10:00,
        did_concurrency 11:00, reward 14:00, bandwidth 15:00, high_cost 17:00, pumping 20:00),
        scaled to ``minutes``; a window is shortened when it would pass the end of the run.

    Returns
    -------
    list of Episode
    """
    if name not in SCENARIOS:
        raise ValueError(
            f"The 'name' parameter of scenario must be one of {list(SCENARIOS)}. Got {name!r} instead."
        )
    if name == "benign" or minutes <= 0:
        return []
    if not profiles:
        raise ValueError(f"scenario {name!r} needs at least one customer")
    kinds = EPISODE_KINDS if name == "all" else (name,)
    out = []
    for i, kind in enumerate(kinds):
        offset = int(_ALL_SLOTS[kind] * minutes)
        duration = min(_DEFAULT_DURATION_MIN[kind], minutes - offset)
        if duration <= 0:
            continue
        out.append(Episode(kind, profiles[i % len(profiles)].customer_id, offset, duration))
    return out


def run_scenario(
    name: str = "all",
    *,
    start: datetime | None = None,
    minutes: int = 1440,
    customers: int = 10,
    seed: int = 0,
    disorder_s: float = 0.0,
) -> Simulation:
    """Profiles + scenario + simulation in one call (what ``tollguard simulate`` runs).

    ``start`` defaults to Tuesday 2025-03-11 00:00 UTC.
    """
    start = start or datetime(2025, 3, 11, tzinfo=UTC)
    profiles = default_profiles(customers, seed)
    return simulate(start, minutes, profiles, scenario(name, profiles, minutes), seed, disorder_s)


# --------------------------------------------------------------------------- output


def _open(path: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if hasattr(path, "write"):
        return path, False  # type: ignore[return-value]
    if str(path) == "-":
        return sys.stdout, False
    return open(path, "w", encoding="utf-8", newline=""), True  # noqa: SIM115


def write(
    records: Iterable[CallDetailRecord], fmt: str, path: str | Path | IO[str], timezone: str = "UTC"
) -> int:
    """Write records, one line each, in one of the adapters' formats.

    Parameters
    ----------
    records : iterable of CallDetailRecord
    fmt : str
        A format of :func:`tollguard.adapters.writers.write_record`: ``"jsonl"`` (the canonical
        model), ``"asterisk-csv"``, ``"freeswitch-csv"``, ``"freeswitch-json"``.
    path : str, Path or text file
        Destination; ``"-"`` is standard output.
    timezone : str
        IANA zone of the naive local timestamps of the CSV formats (see ``write_record``).

    Returns
    -------
    int
        Number of records written.

    Raises
    ------
    ValueError
        Unknown ``fmt`` (raised before the file is opened).
    """
    from tollguard.adapters.writers import WRITE_FORMATS, write_record  # lazy: keeps this module light

    if fmt not in WRITE_FORMATS:
        raise ValueError(f"cannot write CDR format {fmt!r}; expected one of {', '.join(WRITE_FORMATS)}")
    out, close = _open(path)
    n = 0
    try:
        for rec in records:
            line = write_record(fmt, rec, timezone)
            out.write(line)
            out.write("\n")
            n += 1
    finally:
        if close:
            out.close()
    return n


def write_labels(labels: Iterable[EpisodeLabel], path: str | Path | IO[str]) -> int:
    """Write episode labels as JSON lines (see :meth:`EpisodeLabel.to_json_dict`); returns the count."""
    out, close = _open(path)
    n = 0
    try:
        for lab in labels:
            out.write(json.dumps(lab.to_json_dict(), sort_keys=True))
            out.write("\n")
            n += 1
    finally:
        if close:
            out.close()
    return n


def customers_rules(profiles: Iterable[CustomerProfile], timezone: str | None = None) -> dict[str, Any]:
    """The rules-file sections that make the readers normalise simulated numbers right.

    The CSV formats (asterisk-csv, freeswitch-csv) and freeswitch-json carry national
    numbers as dialled (a British customer's CLI ``01617086800``); the readers turn them
    into E.164 with the customer's ``country`` from the rules (else
    ``ingest.default_country``, IT). jsonl carries E.164 and needs none of this.

    Parameters
    ----------
    profiles : iterable of CustomerProfile
    timezone : str, optional
        The ``timezone`` the CSV files were written with; other than UTC it becomes
        ``ingest.timezone``, so their naive local times are read back right.

    Returns
    -------
    dict
        ``{"customers": {customer_id: {"country": ..., "dids": {did: {}, ...}}}}``
        (plus ``{"ingest": {"timezone": ...}}``), ready for ``yaml.safe_dump``; a valid
        rules file (``tollguard rules check``), the other settings at their defaults.
    """
    rules: dict[str, Any] = {}
    if timezone and timezone not in ("UTC", "Etc/UTC", "Z"):
        rules["ingest"] = {"timezone": timezone}
    rules["customers"] = {
        p.customer_id: {"country": p.country, "dids": {did: {} for did in p.dids}} for p in profiles
    }
    return rules


def write_rules(
    profiles: Iterable[CustomerProfile],
    path: str | Path | IO[str],
    timezone: str | None = None,
    version: str = "simulated",
) -> int:
    """Write :func:`customers_rules` as a rules YAML file (``"-"`` = stdout); returns the customer count."""
    import yaml  # lazy: only this output needs it

    rules = {"version": version, **customers_rules(profiles, timezone)}
    out, close = _open(path)
    try:
        out.write(
            "# Rules for replaying simulated CDRs (tollguard simulate --rules-out): each customer's\n"
            "# country and DIDs, so the CSV formats' national numbers normalise to the right E.164.\n"
        )
        yaml.safe_dump(rules, out, sort_keys=False, allow_unicode=True)
    finally:
        if close:
            out.close()
    return len(rules["customers"])
