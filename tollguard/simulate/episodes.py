"""Episodes: the labelled fraud patterns (:class:`Episode`, :class:`EpisodeLabel`) and the presets of :func:`scenario`.

The calls of each kind are built by :mod:`tollguard.simulate.builders`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .profiles import CustomerProfile

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

SCENARIOS: tuple[str, ...] = ("benign", "all", *EPISODE_KINDS, "varied", "traps")
"""Preset names accepted by :func:`scenario` (and ``tollguard simulate --scenario``).

``"varied"`` is ``"all"`` drawn with variety plus the honest traps, ``"traps"`` is ``"benign"``
plus the honest traps (both through :func:`~tollguard.simulate.run_scenario`; to :func:`scenario`
alone they are ``"all"`` with variety and ``"benign"``)."""

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
        "lanes": 0,
        "gap_max_s": 60.0,
        "families": "any",
        "from_customer_pbx": False,
    },
    "arbitrage_reward": {
        "n_calls": 150,
        "n_destinations": 2,
        "billsec_s": 61.0,
        "billsec_jitter_s": 1.0,
        "n_clis": 1,
        "answer_ratio": 1.0,
        "spacing_jitter": 0.1,
        "dest_kind": "mobile",
    },
    "arbitrage_pumping": {
        "n_calls": 200,
        "origin_prefixes": ["+37126", "+447624"],
        "n_origins": 60,
        "answer_ratio": 0.95,
        "talk_median_s": 180.0,
        "talk_min_s": 120.0,
        "talk_max_s": 360.0,
        "arrivals": "slots",
    },
    "arbitrage_high_cost": {
        "talk_minutes": 300.0,
        "n_destinations": 10,
        "answer_ratio": 0.9,
        "talk_min_s": 420.0,
        "talk_max_s": 900.0,
        "lanes": 0,
        "talk_median_s": 1200.0,
        "gap_max_s": 60.0,
        "prefixes": [],
    },
    "autodialer": {
        "attempts_per_min": 30.0,
        "interval_jitter_s": 0.05,
        "answer_ratio": 0.12,
        "talk_min_s": 8.0,
        "talk_max_s": 20.0,
        "first_suffix": 1000,
        "destinations": "sequential",
        "pacing": "regular",
        "batch_size": 5,
        "n_clis": 1,
    },
    "wangiri": {
        "n_calls": 300,
        "ring_min_s": 1.0,
        "ring_max_s": 3.0,
        "countries": ["GB", "DE", "FR", "ES", "CH", "US"],
        "n_clis": 1,
        "answer_ratio": 0.0,
        "fresh_numbers": False,
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
"""Default ``params`` of each episode kind (any key may be overridden in :attr:`Episode.params`).

The defaults are the classic episodes (the built-in example's); the keys after the classic ones
(``lanes``, ``n_clis``, ``pacing``, ...) are what :mod:`tollguard.simulate.variety` draws, and at
their defaults they change nothing (same calls, same random draws).
"""

REQUIRED_LEVEL: dict[str, str] = {
    "premium_destination": "suspension",
    "arbitrage_reward": "suspension",
    "arbitrage_pumping": "suspension",
    "arbitrage_high_cost": "suspension",
    "autodialer": "suspension",
    "wangiri": "suspension",
    "did_concurrency": "capacity_increase",
    "bandwidth": "compliance_notice",
    "volume_anomaly": "alert",
}
"""The event an episode must get (DESIGN §1): a suspension for the fraud kinds of clause 8.2, a
capacity increase for a DID above its capacity (6.1), a compliance notice for a link below 60 kbps
per call (3.1), and an alert (or a suspension) for the volume anomaly, which only the anomaly model
(``--model``) can see."""

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

        Parameters beyond the classic ones (what :mod:`tollguard.simulate.variety` draws; at their
        defaults nothing changes):

        * ``premium_destination``: ``lanes`` (0) > 0 places calls on that many parallel lines,
          back to back for the whole window (gaps U(0.2 s, ``gap_max_s``)), talk lognormal
          around ``talk_median_s`` clipped to [talk_min_s, talk_max_s] (``n_calls`` is then
          unused); ``families`` (``any``: the classic mix; ``national``: the customer's country's
          premium-rate and shared-cost ranges; ``international``: +881 / +882 / +979; ``mixed``);
          ``from_customer_pbx`` (False): the customer's own address and User-Agent (a hacked PBX)
          instead of an attacker's.
        * ``arbitrage_reward``: ``n_clis`` (1) CLIs in rotation (scope ``account`` when > 1),
          ``answer_ratio`` (1.0), ``spacing_jitter`` (0.1 of the slot), ``dest_kind``
          (``mobile``, ``fixed``, ``mixed``).
        * ``arbitrage_pumping``: ``arrivals`` (``slots``: one call per equal slot; ``poisson``).
        * ``arbitrage_high_cost``: ``lanes`` (0) > 0: parallel lines to numbers of the ``prefixes``
          ranges (E.164 prefixes; empty = the classic +239 / +225 / +53), talk around
          ``talk_median_s`` clipped to [talk_min_s, talk_max_s], gaps up to ``gap_max_s``, for the
          whole window (``talk_minutes`` is then unused).
        * ``autodialer``: ``destinations`` (``sequential`` block or ``random`` national fixed and
          mobile numbers), ``pacing`` (``regular``; ``poisson``; ``batch``: bursts of
          ``batch_size`` attempts 0.1-1 s apart, the mean rate kept), ``n_clis`` (1) in rotation.
        * ``wangiri``: ``n_clis`` (1), ``answer_ratio`` (0: a victim picking up within the ring,
          1-5 s of talk), ``fresh_numbers`` (False: from the fixed pools; True: drawn at random,
          for sweeps larger than the pools).
    customer_id : str
        The customer (must be among the simulated profiles).
    start_offset_min : float
        Start of the window, minutes after the simulation start.
    duration_min : float
        Length of the window in minutes (calls start inside it; they may end after it).
    params : dict
        Overrides of :data:`EPISODE_DEFAULTS` for this kind.
    drawn : dict
        What :mod:`tollguard.simulate.variety` drew besides ``params`` (rates such as
        ``calls_per_hour``, the ``time_of_day`` class): copied into the label's ``params``, it does
        not change the calls.
    """

    kind: str
    customer_id: str
    start_offset_min: float
    duration_min: float
    params: dict[str, Any] = field(default_factory=dict)
    drawn: dict[str, Any] = field(default_factory=dict)

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

    ``n_calls``, ``start`` (the first call's start), ``end`` (the last call's end), ``scope`` (what
    must be acted on: the CLI, DID or account the episode's calls use), ``required_level`` (the
    event type the episode must get, :data:`REQUIRED_LEVEL`; ``None`` for an honest trap, which
    must get nothing) and ``params`` (every parameter the episode was built with, drawn ones
    included) are known as soon as the simulation is built; ``call_ids`` fills up while the
    records are iterated (ids are given in arrival order) and is complete when
    :meth:`Simulation.records` is exhausted.
    """

    kind: str
    customer_id: str
    detector: str | None
    scope: dict[str, str]
    start: datetime
    end: datetime
    n_calls: int
    params: dict[str, Any]
    required_level: str | None = None
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
            "required_level": self.required_level,
            "call_ids": list(self.call_ids),
            "params": self.params,
        }


# --------------------------------------------------------------------------- scenarios


def scenario(
    name: str,
    profiles: list[CustomerProfile],
    minutes: int = 1440,
    *,
    variety: bool = False,
    seed: int = 0,
    start: datetime | None = None,
) -> list[Episode]:
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
    variety : bool
        Draw each episode instead (:func:`tollguard.simulate.variety.draw_episodes`): its
        customer (distinct ones, at random), window, time of day and parameters, from ``seed``;
        ``start`` (the run's start, default 2025-03-11 00:00 UTC) places the time of day.
    seed : int
    start : datetime, optional

    Returns
    -------
    list of Episode
    """
    if name not in SCENARIOS:
        raise ValueError(
            f"The 'name' parameter of scenario must be one of {list(SCENARIOS)}. Got {name!r} instead."
        )
    if name == "varied":
        name, variety = "all", True
    if name in ("benign", "traps") or minutes <= 0:
        return []
    if not profiles:
        raise ValueError(f"scenario {name!r} needs at least one customer")
    kinds = EPISODE_KINDS if name == "all" else (name,)
    if variety:
        from .variety import draw_episodes  # lazy: variety imports this module

        return draw_episodes(list(kinds), profiles, minutes, random.Random(f"{seed}:variety"), start)
    out = []
    for i, kind in enumerate(kinds):
        offset = int(_ALL_SLOTS[kind] * minutes)
        duration = min(_DEFAULT_DURATION_MIN[kind], minutes - offset)
        if duration <= 0:
            continue
        out.append(Episode(kind, profiles[i % len(profiles)].customer_id, offset, duration))
    return out
