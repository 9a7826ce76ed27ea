"""Customer profiles: :class:`CustomerProfile` and the realistic defaults of :func:`default_profiles`."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .pools import _FIXED, _parse_valid, _random_digits

# --------------------------------------------------------------------------- profiles

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
    allow_detectors : tuple of str
        Detectors the customer is authorised to trip (the rules' ``customers.X.allow.detectors``,
        written by :func:`~tollguard.simulate.customers_rules`), e.g. ``("autodialer",)`` for a
        call centre with an agreed outbound campaign.
    bought_capacity : int or None
        Simultaneous calls bought for each of the customer's DIDs (rules ``dids.X.capacity``;
        ``None``: the contractual 20).
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
    allow_detectors: tuple[str, ...] = ()
    bought_capacity: int | None = None


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


def default_profiles(n_customers: int, seed: int = 0, variety: bool = False) -> list[CustomerProfile]:
    """Realistic customers: mostly Italian, some German, British and French.

    Parameters
    ----------
    n_customers : int
        Number of customers (``cust-001`` ... ``cust-NNN``); 0 gives an empty list.
    seed : int
        Seed; the same seed gives the same profiles.
    variety : bool
        Draw sizes and habits from the wider ranges of
        :data:`tollguard.simulate.variety.PROFILE_RANGES` (3-400 calls/hour, ASR 0.45-0.75, ...)
        instead of the classic ones; ``False`` (the default) gives the classic profiles.

    Returns
    -------
    list of CustomerProfile
        Classic: peak rates 8-180 calls/hour (lognormal around 40), 1-6 DIDs each (one DID per ~45
        calls/hour of peak), so that benign concurrency per DID stays far below 20.
    """
    if n_customers < 0:
        raise ValueError(f"n_customers must be >= 0, got {n_customers}")
    if variety:
        from .variety import varied_profiles  # lazy: variety imports this module

        return varied_profiles(n_customers, seed)
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
