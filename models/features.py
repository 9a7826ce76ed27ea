"""Window features of one customer's traffic, absolute and relative to its own history.

A customer's CDRs fall in tumbling event-time windows of ``window_s`` seconds, aligned to
the UTC epoch (``window_start_s = floor(end_s / window_s) * window_s``; a CDR belongs to
the window of its **end**, the time it is written and released by the engine). The
window is folded call by call into a small aggregate (:func:`new_window`,
:func:`add_cdr`: O(1) per CDR, JSON-ready), and turned into features once it closes
(:func:`finish_window`). :func:`window_features` is the same computation as one pure
function of a list of CDRs, for tests and notebooks.

Features (``FEATURE_NAMES``; outbound = calls the customer places; internal calls, and outbound calls
to emergency and toll-free numbers, are ignored: they are never evidence, issue 9):

================================  ===============================================================
``attempts``                      outbound call attempts
``answered``                      answered outbound calls
``inbound_attempts``              inbound calls
``distinct_destinations``         distinct outbound called numbers
``international_share``           international outbound attempts / attempts
``high_cost_share``               outbound attempts to premium-type numbers or high-cost prefixes / attempts
``high_cost_minutes``             answered minutes to those numbers (the CDR carries no rated cost:
                                  this is the cost signal)
``new_countries``                 destination countries absent from the customer's history
                                  (0 until it has ``min_history_windows`` windows)
``asr``                           answered / attempts (0 without attempts)
``acd_s``                         mean talk time of answered outbound calls, s (0 without any)
``night_share``                   external calls starting at local night / external calls
``weekend_share``                 external calls starting on a local Saturday or Sunday / external calls
``peak_concurrency``              mean simultaneous external calls in the window's busiest minute
``*_rel``                         ``ln((x + 1) / (b + 1))``: the window's value ``x`` against ``b``, the
                                  customer's exponentially weighted mean over its past windows with
                                  traffic (0 until it has ``min_history_windows`` of them)
``attempts_hour_rel``             the same for attempts against the customer's own mean for that local
                                  hour of the day (silent windows count as 0; 0 until that hour has
                                  been seen and the customer has ``min_history_windows`` windows)
================================  ===============================================================

Local time is the customer's country's main time zone (libphonenumber's zone of the
country's example number). Counts that feed the relative features, and the destination
countries, are folded into the customer's history (:func:`fold_history`) after the
window is scored, so a window is always compared with its past only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

from tollguard.cdr import CallDetailRecord, Direction
from tollguard.numbers import IRSF_COUNTRY_CODES, NumberInfo, NumberType, classify, matches_prefix
from tollguard.rates import RateTable

#: Absolute features of a window, in model order.
ABSOLUTE_FEATURES: tuple[str, ...] = (
    "attempts",
    "answered",
    "inbound_attempts",
    "distinct_destinations",
    "international_share",
    "high_cost_share",
    "high_cost_minutes",
    "new_countries",
    "asr",
    "acd_s",
    "night_share",
    "weekend_share",
    "peak_concurrency",
)

#: Window counts tracked by the customer's baseline (EWMA over its windows): feature -> baseline key.
BASELINE_OF: dict[str, str] = {
    "attempts_rel": "attempts",
    "inbound_attempts_rel": "inbound_attempts",
    "international_attempts_rel": "international_attempts",
}

#: Every feature, in the order the model sees them.
FEATURE_NAMES: tuple[str, ...] = ABSOLUTE_FEATURES + tuple(BASELINE_OF) + ("attempts_hour_rel",)

#: Windows of silence folded into the hour-of-day baseline at most (one week of hours).
MAX_SILENT_WINDOWS = 168

#: Features the model sees as ``ln(1 + x)`` (counts and durations: heavy right tails).
LOG_FEATURES: frozenset[str] = frozenset(
    {"attempts", "answered", "inbound_attempts", "distinct_destinations", "high_cost_minutes",
     "new_countries", "acd_s", "peak_concurrency"}
)  # fmt: skip

#: Number types that make a destination high-cost (clause 8.2 names them).
PREMIUM_TYPES: frozenset[NumberType] = frozenset(
    {NumberType.PREMIUM_RATE, NumberType.SHARED_COST, NumberType.PERSONAL_NUMBER}
)

#: Minute buckets of the peak-concurrency estimate, s.
BUCKET_S = 60.0


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed; recorded in a trained model so scoring matches training.

    Attributes
    ----------
    window_s : float
        Tumbling window length, s (default one hour).
    baseline_alpha : float
        EWMA weight of each closed window with traffic in the customer's baseline.
    hour_alpha : float
        EWMA weight of each day in the customer's hour-of-day baseline of attempts.
    min_history_windows : int
        Windows with traffic a customer needs before relative features and new countries count.
    night_start_hour, night_end_hour : int
        Local night is ``[night_start_hour, 24)`` and ``[0, night_end_hour)``.
    high_cost_prefixes : tuple of str
        E.164 prefixes of high-cost (IRSF) destinations, besides the rules' ``high_risk_prefixes``.
    max_destinations : int
        Distinct destinations remembered per window (beyond it they are counted, not stored).
    max_countries : int
        Countries remembered in a customer's history (bounds the state).
    """

    window_s: float = 3600.0
    baseline_alpha: float = 0.03
    hour_alpha: float = 0.2
    min_history_windows: int = 24
    night_start_hour: int = 22
    night_end_hour: int = 6
    high_cost_prefixes: tuple[str, ...] = (*IRSF_COUNTRY_CODES, "+979")
    max_destinations: int = 5000
    max_countries: int = 300

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the model file)."""
        data = asdict(self)
        data["high_cost_prefixes"] = list(self.high_cost_prefixes)
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> FeatureSettings:
        """Inverse of :meth:`to_json_dict` (unknown keys ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "high_cost_prefixes" in known:
            known["high_cost_prefixes"] = tuple(known["high_cost_prefixes"])
        return cls(**known)


@lru_cache(maxsize=512)
def zone_of(country: str) -> ZoneInfo:
    """Main IANA time zone of a country (libphonenumber's zone of its example number); UTC if unknown.

    >>> zone_of("IT").key
    'Europe/Rome'
    """
    example = phonenumbers.example_number(country.upper())
    zones = pn_timezone.time_zones_for_number(example) if example is not None else ()
    for name in zones:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError):  # "Etc/Unknown" and the like
            continue
    return ZoneInfo("UTC")


def window_start_of(end_s: float, window_s: float) -> float:
    """Start (UTC epoch s) of the tumbling window a CDR ending at ``end_s`` belongs to."""
    return math.floor(end_s / window_s) * window_s


def new_history() -> dict[str, Any]:
    """An empty customer history.

    ``n``: windows with traffic folded; ``ewma``: baseline per count; ``hour``: attempts
    baseline per local hour of day (None = hour never seen); ``last_s``: start of the last
    window folded; ``countries``: destination countries called (sorted).
    """
    return {"n": 0, "ewma": {}, "hour": [None] * 24, "last_s": None, "countries": []}


def local_hour(start_s: float, country: str) -> int:
    """Local hour of day (0-23) at ``start_s`` in the customer's country."""
    return datetime.fromtimestamp(start_s, tz=zone_of(country)).hour


def new_window(start_s: float, hour: int = 0) -> dict[str, Any]:
    """An empty window aggregate starting at ``start_s`` (``hour``: its local hour of day; JSON-ready)."""
    return {
        "start_s": start_s,
        "hour": hour,
        "last_end_s": start_s,
        "n_out": 0,
        "n_ans": 0,
        "talk_s": 0.0,
        "n_in": 0,
        "n_intl": 0,
        "n_hc": 0,
        "hc_talk_s": 0.0,
        "n_ext": 0,
        "n_night": 0,
        "n_weekend": 0,
        "dests": {},
        "dests_over": 0,
        "countries": {},
        "occ": {},
        "ids": [],
        "cost": 0.0,
        "priced": 0,
    }


def _never_evidence(info: NumberInfo) -> bool:
    """An outbound call to an emergency or toll-free number (never evidence, issue 9)."""
    return info.is_emergency or info.number_type is NumberType.TOLL_FREE


def _is_high_cost(e164: str | None, ntype: NumberType, prefixes: tuple[str, ...]) -> bool:
    return ntype in PREMIUM_TYPES or (e164 is not None and matches_prefix(e164, prefixes) is not None)


def add_cdr(
    win: dict[str, Any],
    cdr: CallDetailRecord,
    country: str,
    settings: FeatureSettings,
    high_risk_prefixes: tuple[str, ...] = (),
    sample_call_ids: int = 10,
    rates: RateTable | None = None,
) -> None:
    """Fold one CDR of the window into ``win`` (in place; O(1), at most 60 minute buckets touched).

    Internal calls are ignored, and so are outbound calls to emergency and toll-free numbers
    (never evidence; an inbound caller id is not trusted for it: it can be spoofed).
    ``country`` is the customer's ISO region (numbering and local time);
    ``high_risk_prefixes`` the rules' IRSF prefixes; ``rates`` prices the outbound calls for
    the evidence (``win["cost"]`` over ``win["priced"]`` priced calls; no feature uses it).
    """
    if cdr.direction is Direction.INTERNAL:
        return
    info = classify(cdr.callee, country) if cdr.direction is Direction.OUTBOUND else None
    if info is not None and _never_evidence(info):
        return
    start_s, end_s = cdr.start.timestamp(), cdr.end.timestamp()
    win["last_end_s"] = max(win["last_end_s"], end_s)
    win["n_ext"] += 1
    local = cdr.start.astimezone(zone_of(country))
    hour = local.hour
    if hour >= settings.night_start_hour or hour < settings.night_end_hour:
        win["n_night"] += 1
    if local.weekday() >= 5:
        win["n_weekend"] += 1
    _occupy(win, start_s, end_s, settings)
    if info is None:  # inbound
        win["n_in"] += 1
        return
    _add_outbound(win, cdr, info, settings, high_risk_prefixes, sample_call_ids, rates)


def _occupy(win: dict[str, Any], start_s: float, end_s: float, settings: FeatureSettings) -> None:
    """Busiest-minute occupancy: the call's seconds in each minute bucket inside the window."""
    w0, w1 = win["start_s"], win["start_s"] + settings.window_s
    a, b = max(start_s, w0), min(end_s, w1)
    occ = win["occ"]
    if b > a:
        first = int((a - w0) // BUCKET_S)
        last = math.ceil((b - w0) / BUCKET_S)
        for k in range(first, last):
            lo, hi = w0 + k * BUCKET_S, w0 + (k + 1) * BUCKET_S
            overlap = min(b, hi) - max(a, lo)
            if overlap > 0:
                key = str(k)
                occ[key] = occ.get(key, 0.0) + overlap


def _add_outbound(
    win: dict[str, Any],
    cdr: CallDetailRecord,
    info: NumberInfo,
    settings: FeatureSettings,
    high_risk_prefixes: tuple[str, ...],
    sample_call_ids: int,
    rates: RateTable | None,
) -> None:
    """The outbound part of :func:`add_cdr` (``info``: the callee, classified)."""
    win["n_out"] += 1
    answered = cdr.answered
    if answered:
        win["n_ans"] += 1
        win["talk_s"] += cdr.billsec_s
    cost = rates.cost(info.e164, cdr.billsec_s) if rates is not None and info.e164 else None
    if cost is not None:
        win["cost"] = win.get("cost", 0.0) + cost
        win["priced"] = win.get("priced", 0) + 1
    dests = win["dests"]
    if cdr.callee not in dests:
        if len(dests) < settings.max_destinations:
            dests[cdr.callee] = 1
        else:
            win["dests_over"] += 1
    if info.international:
        win["n_intl"] += 1
    if info.region and info.number_type not in (
        NumberType.EMERGENCY,
        NumberType.SHORT_CODE,
        NumberType.EXTENSION,
    ):
        countries = win["countries"]
        countries[info.region] = countries.get(info.region, 0) + 1
    if _is_high_cost(info.e164, info.number_type, settings.high_cost_prefixes + high_risk_prefixes):
        win["n_hc"] += 1
        if answered:
            win["hc_talk_s"] += cdr.billsec_s
    ids = win["ids"]
    if len(ids) < sample_call_ids:
        ids.append(cdr.call_id)


def _rel(x: float, base: float) -> float:
    return math.log((x + 1.0) / (base + 1.0))


def window_counts(win: Mapping[str, Any]) -> dict[str, float]:
    """The window's values that the customer's baseline tracks (see ``BASELINE_OF``)."""
    n_ans = win["n_ans"]
    return {
        "attempts": float(win["n_out"]),
        "answered": float(n_ans),
        "inbound_attempts": float(win["n_in"]),
        "distinct_destinations": float(len(win["dests"]) + win["dests_over"]),
        "international_attempts": float(win["n_intl"]),
        "acd_s": win["talk_s"] / n_ans if n_ans else 0.0,
        "peak_concurrency": max(win["occ"].values(), default=0.0) / BUCKET_S,
    }


def new_countries_of(
    win: Mapping[str, Any], history: Mapping[str, Any], settings: FeatureSettings
) -> list[str]:
    """Destination countries of the window the customer never called (empty while its history is short)."""
    if history["n"] < settings.min_history_windows:
        return []
    seen = set(history["countries"])
    return sorted(c for c in win["countries"] if c not in seen)


def finish_window(
    win: Mapping[str, Any], history: Mapping[str, Any], settings: FeatureSettings
) -> dict[str, float]:
    """Features of a closed window against the customer's history (neither is modified).

    Returns
    -------
    dict of str to float
        One value per name of ``FEATURE_NAMES``, in that order.
    """
    counts = window_counts(win)
    n_out, n_ext = win["n_out"], win["n_ext"]
    feats: dict[str, float] = {
        "attempts": counts["attempts"],
        "answered": counts["answered"],
        "inbound_attempts": counts["inbound_attempts"],
        "distinct_destinations": counts["distinct_destinations"],
        "international_share": win["n_intl"] / n_out if n_out else 0.0,
        "high_cost_share": win["n_hc"] / n_out if n_out else 0.0,
        "high_cost_minutes": win["hc_talk_s"] / 60.0,
        "new_countries": float(len(new_countries_of(win, history, settings))),
        "asr": win["n_ans"] / n_out if n_out else 0.0,
        "acd_s": counts["acd_s"],
        "night_share": win["n_night"] / n_ext if n_ext else 0.0,
        "weekend_share": win["n_weekend"] / n_ext if n_ext else 0.0,
        "peak_concurrency": counts["peak_concurrency"],
    }
    warm = history["n"] >= settings.min_history_windows
    ewma = history["ewma"]
    for name, key in BASELINE_OF.items():
        feats[name] = _rel(counts[key], ewma.get(key, 0.0)) if warm else 0.0
    hour_base = history["hour"][win["hour"]]
    feats["attempts_hour_rel"] = (
        _rel(counts["attempts"], hour_base) if warm and hour_base is not None else 0.0
    )
    return feats


def _fold_hour(hours: list[float | None], hour: int, value: float, alpha: float) -> None:
    old = hours[hour]
    hours[hour] = value if old is None else (1.0 - alpha) * old + alpha * value


def fold_history(
    history: dict[str, Any],
    win: Mapping[str, Any],
    settings: FeatureSettings,
    country: str,
    learn_countries: bool = True,
) -> None:
    """Fold a closed window into the customer's history (in place).

    The baseline EWMAs take the window's counts; the hour-of-day baseline takes the silent
    windows since the last one folded (as 0, at most :data:`MAX_SILENT_WINDOWS`) and this
    one; the window's destination countries become known unless ``learn_countries`` is
    False (a flagged window: its countries stay new until a verdict clears them).
    """
    counts = window_counts(win)
    ewma = history["ewma"]
    alpha = settings.baseline_alpha
    for key, value in counts.items():
        if key == "acd_s" and not win["n_ans"]:
            continue  # no answered call: nothing to learn about talk times
        old = ewma.get(key)
        ewma[key] = value if old is None else (1.0 - alpha) * old + alpha * value
    hours = history["hour"]
    last_s, window_s = history["last_s"], settings.window_s
    if last_s is not None:
        silent = round((win["start_s"] - last_s) / window_s) - 1
        for k in range(max(1, silent - MAX_SILENT_WINDOWS + 1), silent + 1):
            _fold_hour(hours, local_hour(last_s + k * window_s, country), 0.0, settings.hour_alpha)
    _fold_hour(hours, win["hour"], counts["attempts"], settings.hour_alpha)
    history["last_s"] = win["start_s"]
    history["n"] += 1
    if learn_countries:
        learn(history, win["countries"], settings)


def learn(history: dict[str, Any], countries: Iterable[str], settings: FeatureSettings) -> None:
    """Add destination countries to the customer's history (bounded by ``max_countries``)."""
    known = history["countries"]
    new = sorted(set(countries) - set(known))
    room = settings.max_countries - len(known)
    if new and room > 0:
        known.extend(new[:room])
        known.sort()


def window_features(
    cdrs: Iterable[CallDetailRecord],
    *,
    country: str,
    window_start_s: float,
    settings: FeatureSettings | None = None,
    history: Mapping[str, Any] | None = None,
    high_risk_prefixes: tuple[str, ...] = (),
) -> dict[str, float]:
    """Features of one customer's window of CDRs: a pure function (inputs are not modified).

    Parameters
    ----------
    cdrs : iterable of CallDetailRecord
        The customer's CDRs of the window (any order).
    country : str
        The customer's ISO region (numbering plan and local time).
    window_start_s : float
        Window start, UTC epoch s.
    settings : FeatureSettings, optional
    history : mapping, optional
        The customer's history (:func:`new_history` shape); none = no history.
    high_risk_prefixes : tuple of str
        The rules' IRSF prefixes.

    Returns
    -------
    dict of str to float
        ``FEATURE_NAMES`` → value.

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> from tollguard.cdr import Direction
    >>> calls = [make_cdr(call_id=f"c{i}", direction=Direction.OUTBOUND, callee=callee, start_s=60 * i,
    ...                   end_s=60 * i + 30) for i, callee in enumerate(["+390612345678", "+4930123456"])]
    >>> f = window_features(calls, country="IT", window_start_s=calls[0].start.timestamp())
    >>> f["attempts"], f["international_share"], f["asr"]
    (2.0, 0.5, 1.0)
    """
    settings = settings or FeatureSettings()
    win = new_window(window_start_s, local_hour(window_start_s, country))
    for cdr in sorted(cdrs, key=lambda c: (c.end, c.call_id)):
        add_cdr(win, cdr, country, settings, high_risk_prefixes)
    return finish_window(win, history if history is not None else new_history(), settings)


__all__ = [
    "ABSOLUTE_FEATURES",
    "BASELINE_OF",
    "FEATURE_NAMES",
    "LOG_FEATURES",
    "FeatureSettings",
    "add_cdr",
    "finish_window",
    "fold_history",
    "learn",
    "local_hour",
    "new_countries_of",
    "new_history",
    "new_window",
    "window_counts",
    "window_features",
    "window_start_of",
    "zone_of",
]
