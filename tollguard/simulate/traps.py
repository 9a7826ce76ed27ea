"""Honest traps: benign customers whose traffic looks odd and must raise nothing.

Real operators see honest traffic that a naive rule takes for fraud (field-figures.md, "Honest
traffic that looks odd"; issue 9, "the benign traps stay silent"). Each :class:`Trap` is one such
customer behaviour, labelled like an episode (:class:`~tollguard.simulate.EpisodeLabel` with
``required_level=None``: nothing may be raised) but kept apart from the episodes
(:attr:`Simulation.trap_labels`), so that recall figures never count them.

``hotline_at_capacity``
    A hotline DID (the number after the customer's DID block) carrying exactly ``n_concurrent``
    (20, the contractual capacity) simultaneous calls, never more, for a business day; callers
    arriving while it is full are refused (BUSY, cause 17, zero duration), ``overflow_per_hour``
    of them.
``toll_free_heavy``
    A customer calling ``n_numbers`` toll-free numbers of its country ``calls_per_hour`` times an
    hour in business hours (suppliers' hotlines, hold queues: long, varied calls).
``many_countries``
    A firm calling ``n_countries`` (40) countries all business day (fixed numbers; the list
    includes Latvia and Estonia, which the default rules count as high-cost).
``g729_low_kbps``
    A G.729 customer (the profile's codec is set to G729) whose calls run at 24-31 kbit/s at the IP
    layer (plain RTP, SRTP's 10-byte tag, SRTP plus an 8-byte header extension) without loss.
``duplicate_cdrs``
    Every CDR of the customer arrives twice (a switch re-delivering after a restart), the second
    copy up to ``max_delay_s`` later (within the default allowed lateness of 300 s).
``emergency_calls``
    An incident: ``n_calls`` calls to the country's emergency numbers (112, 113, 999, 15, ...)
    within the window, from several lines.
``allowed_autodialer``
    A call centre authorised to run an outbound campaign, with capacity bought for its numbers
    (its profile's ``allow_detectors`` is ``("autodialer",)`` and ``bought_capacity`` 60, written
    to the rules by :func:`~tollguard.simulate.customers_rules`).
``alarm_panels``
    An alarm-monitoring firm whose panels dial ``n_receivers`` receiver numbers with short test
    calls of near-constant length, day and night.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .benign import _activity, _local
from .builders import _ep_autodialer, _lanes, _lognorm_median, _spare_did
from .calls import _BUSY, _PAYLOAD_BYTES, _RTP_HEADER_BYTES, _Call, _Cust, _in_call, _out_call, _pick
from .episodes import EPISODE_DEFAULTS
from .pools import _Num, _region_pool
from .profiles import _UTC_OFFSET_MIN, CustomerProfile
from .records import _dt
from .variety import TIME_CLASSES, C, R, place

TRAP_KINDS: tuple[str, ...] = (
    "hotline_at_capacity",
    "toll_free_heavy",
    "many_countries",
    "g729_low_kbps",
    "duplicate_cdrs",
    "emergency_calls",
    "allowed_autodialer",
    "alarm_panels",
)
"""The names of the honest traps."""

TRAP_DEFAULTS: dict[str, dict[str, Any]] = {
    "hotline_at_capacity": {
        "n_concurrent": 20,
        "talk_min_s": 60.0,
        "talk_max_s": 600.0,
        "gap_max_s": 15.0,
        "overflow_per_hour": 12.0,
    },
    "toll_free_heavy": {"calls_per_hour": 40.0, "n_numbers": 3, "answer_ratio": 0.92, "talk_median_s": 240.0},
    "many_countries": {"n_countries": 40, "calls_per_hour": 60.0, "answer_ratio": 0.6, "talk_median_s": 180.0},
    "g729_low_kbps": {"calls_per_hour": 40.0},
    "duplicate_cdrs": {"max_delay_s": 120.0},
    "emergency_calls": {"n_calls": 8, "answer_ratio": 0.95, "talk_median_s": 120.0},
    "allowed_autodialer": {
        "attempts_per_min": 15.0,
        "answer_ratio": 0.3,
        "talk_min_s": 20.0,
        "talk_max_s": 240.0,
        "destinations": "random",
    },
    "alarm_panels": {"calls_per_hour": 40.0, "n_receivers": 2, "billsec_s": 12.0, "billsec_sd_s": 1.0},
}
"""Default ``params`` of each trap (the classic sizes; :data:`TRAP_RANGES` with ``variety``)."""

TRAP_RANGES: dict[str, dict[str, R | C]] = {
    "hotline_at_capacity": {
        "duration_min": R(240, 600),  # a business day at the limit (field-figures: "hotlines peaking exactly")
        "time_of_day": C(TIME_CLASSES, (1.0, 0.0, 0.0)),
        "talk_min_s": R(30, 120),  # engineering guess: service calls of 1-15 min
        "talk_max_s": R(300, 900),
        "gap_max_s": R(1, 20),  # the queue refills the line at once
        "overflow_per_hour": R(0, 60),  # callers refused while all 20 lines are busy (engineering guess)
    },
    "toll_free_heavy": {
        "calls_per_hour": R(15, 80, "log"),  # field-figures: "toll-free heavy callers"
        "n_numbers": R(1, 5, "int"),
        "answer_ratio": R(0.85, 0.98),  # toll-free lines answer (IVR)
        "talk_median_s": R(60, 600, "log"),  # hold queues
    },
    "many_countries": {
        "n_countries": R(40, 40, "int"),  # issue 9: "a firm calling 40 countries all day"
        "calls_per_hour": R(20, 120, "log"),  # field-figures: "firms calling dozens of countries in business hours"
        "answer_ratio": R(0.5, 0.75),  # typical ASR (Sippy)
        "talk_median_s": R(90, 400, "log"),  # conversational (legalcallsonly)
    },
    "g729_low_kbps": {"calls_per_hour": R(10, 60, "log")},  # issue 9: a G.729 customer at 24-31 kbps without loss
    "duplicate_cdrs": {"max_delay_s": R(1, 200)},  # field-figures: CDR re-deliveries after a switch restart
    "emergency_calls": {
        "duration_min": R(10, 60, "log"),  # field-figures: "emergency calls during an incident"
        "time_of_day": C(TIME_CLASSES, (0.5, 0.3, 0.2)),
        "n_calls": R(2, 15, "int"),
        "answer_ratio": R(0.8, 1.0),
        "talk_median_s": R(30, 400, "log"),
    },
    "allowed_autodialer": {
        "duration_min": R(120, 480, "log"),  # field-figures: "call centres" (authorised, rules allow)
        "time_of_day": C(TIME_CLASSES, (1.0, 0.0, 0.0)),
        "attempts_per_min": R(6, 25, "log"),  # a predictive dialer for 10-40 agents (engineering guess)
        "answer_ratio": R(0.15, 0.45),  # ASR 20 % low-quality .. 50 % (Sippy)
        "talk_min_s": R(10, 30),
        "talk_max_s": R(120, 300),  # agents talk: conversational calls
        "destinations": C(("sequential", "random"), (0.3, 0.7)),
    },
    "alarm_panels": {
        "calls_per_hour": R(10, 120, "log"),  # field-figures: "alarm panels dialling short test calls"
        "n_receivers": R(1, 3, "int"),  # a receiving centre's lines
        "billsec_s": R(8, 20),  # a Contact ID test report and kiss-off (engineering guess)
        "billsec_sd_s": R(0.3, 3.0),  # panels differ little: the same protocol exchange
    },
}
"""Ranges of each trap's parameters and window (``duration_min``, ``time_of_day``: windowed traps only;
the others span the whole run), each with its source."""

_WINDOWED: frozenset[str] = frozenset({"hotline_at_capacity", "emergency_calls", "allowed_autodialer"})

_EMERGENCY: dict[str, tuple[str, ...]] = {
    "IT": ("112", "113", "115", "118"),
    "DE": ("112", "110"),
    "GB": ("999", "112"),
    "FR": ("112", "15", "17", "18"),
}

# 40+ countries a trading firm calls (fixed lines, libphonenumber example ranges); LV and EE are
# in the default rules' high_cost_country_codes.
_FIRM_COUNTRIES: tuple[str, ...] = (
    "US", "CA", "GB", "DE", "FR", "ES", "PT", "NL", "BE", "CH", "AT", "SE", "NO", "DK", "FI", "PL", "CZ",
    "SK", "HU", "RO", "BG", "GR", "TR", "IE", "LU", "SI", "HR", "RS", "LV", "EE", "LT", "JP", "CN", "IN",
    "SG", "AU", "BR", "MX", "AR", "ZA", "AE", "IL", "MA", "KR", "HK",
)  # fmt: skip


@dataclass(frozen=True)
class Trap:
    """An honest, odd-looking behaviour of one customer (see the module doc for the kinds).

    ``start_offset_min`` / ``duration_min`` give the window of the windowed traps
    (``hotline_at_capacity``, ``emergency_calls``, ``allowed_autodialer``); the others use them as
    the span of their all-day traffic (business hours inside it).
    """

    kind: str
    customer_id: str
    start_offset_min: float
    duration_min: float
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TRAP_KINDS:
            raise ValueError(f"The 'kind' parameter of Trap must be one of {list(TRAP_KINDS)}. Got {self.kind!r}.")
        unknown = set(self.params) - set(TRAP_DEFAULTS[self.kind])
        if unknown:
            raise ValueError(f"unknown params for trap {self.kind}: {sorted(unknown)}")

    def effective_params(self) -> dict[str, Any]:
        """Defaults of the kind updated with :attr:`params`."""
        return {**TRAP_DEFAULTS[self.kind], **self.params}


def honest_traps(
    profiles: list[CustomerProfile],
    start: datetime,
    minutes: int,
    rng: random.Random,
    exclude: set[str] | None = None,
    variety: bool = True,
    kinds: tuple[str, ...] = TRAP_KINDS,
) -> tuple[list[CustomerProfile], list[Trap]]:
    """One trap of each kind on distinct customers (not in ``exclude``), drawn with ``rng``.

    Returns the profiles (the G.729 trap's customer gets codec G729, the call centre
    ``allow_detectors=("autodialer",)`` and ``bought_capacity=60``) and the traps. With
    ``variety`` the parameters are drawn from :data:`TRAP_RANGES`, else the defaults are used
    (windows are drawn either way). With fewer free customers than kinds, the last kinds are
    left out.
    """
    free = [p for p in profiles if p.customer_id not in (exclude or set())]
    chosen = rng.sample(free, min(len(free), len(kinds)))
    by_id = {p.customer_id: p for p in profiles}
    traps: list[Trap] = []
    for kind, prof in zip(kinds, chosen, strict=False):
        spec = TRAP_RANGES[kind]
        params: dict[str, Any] = {}
        if variety:
            for key, rang in spec.items():
                if key in ("duration_min", "time_of_day"):
                    continue
                value = rang.draw(rng)
                default = TRAP_DEFAULTS[kind][key]
                params[key] = int(value) if isinstance(default, int) and not isinstance(default, bool) else (
                    round(value, 2) if isinstance(value, float) else value)
        if kind in _WINDOWED:
            wanted = str(spec["time_of_day"].draw(rng))
            duration = spec["duration_min"].draw(rng)
            offset, duration = place(rng, start, minutes, duration, wanted, prof)
        else:
            offset, duration = 0.0, float(minutes)
        if kind == "g729_low_kbps":
            by_id[prof.customer_id] = dataclasses.replace(prof, codec="G729")
        elif kind == "allowed_autodialer":
            by_id[prof.customer_id] = dataclasses.replace(prof, allow_detectors=("autodialer",), bought_capacity=60)
        traps.append(Trap(kind, prof.customer_id, offset, duration, params))
    return [by_id[p.customer_id] for p in profiles], traps


# --------------------------------------------------------------------------- builders

_TrapOut = tuple[list[_Call], dict[str, str]]


def _office_starts(rng: random.Random, c: _Cust, t0: int, span: int, per_hour: float, all_day: bool) -> list[int]:
    """Poisson starts at ``per_hour`` scaled by the customer's business-day curve (flat if ``all_day``)."""
    if per_hour <= 0:
        return []
    rate_ms = per_hour / 3_600_000
    off = _UTC_OFFSET_MIN.get(c.p.country, 60)
    out = []
    t = t0 + rng.expovariate(rate_ms)
    while t < t0 + span:
        if all_day or rng.random() < _activity(_local(_dt(int(t)), off), c.p.business_start_hour,
                                                c.p.business_end_hour):
            out.append(int(t))
        t += rng.expovariate(rate_ms)
    return out


def _tr_hotline(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    did, did_raw = _spare_did(c)
    calls: list[_Call] = []
    intervals: list[tuple[int, int]] = []
    for s, ring, talk in _lanes(rng, int(prm["n_concurrent"]), t0, span, prm["talk_min_s"], prm["talk_max_s"],
                                prm["gap_max_s"]):
        pool = c.nat_fixed if rng.random() < 0.5 else c.nat_mobile
        call = _in_call(c, rng, s, did, did_raw, pool[rng.randrange(len(pool))], ring, talk, label)
        calls.append(call)
        intervals.append((call[0], call[2]))
    n_over = int(prm["overflow_per_hour"] * span / 3_600_000)
    for _ in range(n_over * 4):  # refused callers: only at instants when every line is busy
        if n_over <= 0:
            break
        t = t0 + int(rng.random() * span)
        if sum(1 for a, b in intervals if a <= t < b) < prm["n_concurrent"]:
            continue
        pool = c.nat_fixed if rng.random() < 0.5 else c.nat_mobile
        num = pool[rng.randrange(len(pool))]
        refused = _in_call(c, rng, t, did, did_raw, num, 0.0, 0.0, label, answered=False)
        calls.append((*refused[:10], _BUSY, 17, *refused[12:]))
        n_over -= 1
    calls.sort()
    return calls, {"kind": "did", "value": did}


def _tr_toll_free(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    numbers = rng.sample(c.toll_free, min(len(c.toll_free), int(prm["n_numbers"])))
    calls: list[_Call] = []
    for s in _office_starts(rng, c, t0, span, prm["calls_per_hour"], False):
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.8, 15, 3600)
        ring = rng.uniform(1, 5) if ans else rng.uniform(15, 40)
        calls.append(_out_call(c, rng, s, _pick(c.cli_cum, rng.random()), rng.choice(numbers), ans, ring, talk, label))
    return calls, {"kind": "account", "value": c.cid}


def _tr_many_countries(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _TrapOut:
    regions = [r for r in _FIRM_COUNTRIES if r != c.p.country][: int(prm["n_countries"])]
    calls: list[_Call] = []
    for i, s in enumerate(_office_starts(rng, c, t0, span, prm["calls_per_hour"], False)):
        region = regions[i % len(regions)] if i < len(regions) else rng.choice(regions)
        num = rng.choice(_region_pool(region))
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.9, 5, 5400)
        ring = rng.uniform(3, 15) if ans else rng.uniform(15, 45)
        calls.append(_out_call(c, rng, s, _pick(c.cli_cum, rng.random()), num, ans, ring, talk, label))
    return calls, {"kind": "account", "value": c.cid}


def _g729_media(rng: random.Random, billsec_ms: int) -> tuple[float, ...]:
    # 20-byte G.729 frames every 20 ms; RTP 12 bytes, + SRTP's 10-byte tag, + an 8-byte header extension:
    # 24.0, 28.0 or 31.2 kbit/s at the IP layer (28 IP/UDP bytes a packet added); no loss
    extra = rng.choice((0, 10, 18))
    pkt = _PAYLOAD_BYTES["G729"] + _RTP_HEADER_BYTES + extra
    sent = billsec_ms * 50 // 1000
    mos = round(3.9 + rng.random() * 0.2, 2)
    return (float(sent * pkt), float(sent * pkt), float(sent), float(sent), 0.0, mos)


def _tr_g729(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    calls: list[_Call] = []
    for s in _office_starts(rng, c, t0, span, prm["calls_per_hour"], False):
        talk = _lognorm_median(rng, 150, 0.8, 15, 3600)
        media = _g729_media(rng, int(talk * 1000))
        if rng.random() < 0.5:
            pool = c.nat_fixed if rng.random() < 0.6 else c.nat_mobile
            calls.append(_out_call(c, rng, s, _pick(c.cli_cum, rng.random()), pool[rng.randrange(len(pool))], True,
                                   rng.uniform(2, 10), talk, label, codec="G729", media=media))
        else:
            di = _pick(c.did_cum, rng.random())
            pool = c.nat_fixed if rng.random() < 0.6 else c.nat_mobile
            calls.append(_in_call(c, rng, s, c.dids[di], c.did_nat[di], pool[rng.randrange(len(pool))],
                                  rng.uniform(2, 10), talk, label, media=media, codec="G729"))
    return calls, {"kind": "account", "value": c.cid}


def _tr_duplicates(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    return [], {"kind": "account", "value": c.cid}  # the simulation delivers each of its CDRs twice


def _tr_emergency(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    numbers = _EMERGENCY.get(c.p.country, ("112",))
    calls: list[_Call] = []
    for s in sorted(t0 + int(rng.random() * span) for _ in range(int(prm["n_calls"]))):
        number = numbers[0] if rng.random() < 0.6 else rng.choice(numbers)
        ans = rng.random() < prm["answer_ratio"]
        talk = _lognorm_median(rng, prm["talk_median_s"], 0.7, 10, 3600)
        calls.append(_out_call(c, rng, s, rng.randrange(len(c.dids)), (number, number), ans,
                               rng.uniform(1, 3) if ans else rng.uniform(10, 30), talk, label))
    return calls, {"kind": "account", "value": c.cid}


def _tr_allowed_dialer(
    rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int
) -> _TrapOut:
    dialer = {**EPISODE_DEFAULTS["autodialer"], **prm, "first_suffix": 0, "interval_jitter_s": 0.3}
    n = int(span / 60_000 * prm["attempts_per_min"])
    if dialer["destinations"] == "sequential" and n > 9000:
        dialer["destinations"] = "random"
    return _ep_autodialer(rng, c, t0, span, dialer, label)


def _tr_alarm(rng: random.Random, c: _Cust, t0: int, span: int, prm: dict[str, Any], label: int) -> _TrapOut:
    receivers: list[_Num] = rng.sample(c.nat_fixed, int(prm["n_receivers"]))
    calls: list[_Call] = []
    for s in _office_starts(rng, c, t0, span, prm["calls_per_hour"], True):
        talk = max(4.0, rng.gauss(prm["billsec_s"], prm["billsec_sd_s"]))
        calls.append(_out_call(c, rng, s, _pick(c.cli_cum, rng.random()), rng.choice(receivers), True,
                               rng.uniform(1, 3), talk, label))
    return calls, {"kind": "account", "value": c.cid}


_TRAP_BUILDERS = {
    "hotline_at_capacity": _tr_hotline,
    "toll_free_heavy": _tr_toll_free,
    "many_countries": _tr_many_countries,
    "g729_low_kbps": _tr_g729,
    "duplicate_cdrs": _tr_duplicates,
    "emergency_calls": _tr_emergency,
    "allowed_autodialer": _tr_allowed_dialer,
    "alarm_panels": _tr_alarm,
}
