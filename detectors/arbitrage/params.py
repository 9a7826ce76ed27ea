"""Thresholds of ``arbitrage``: one model for its three checks (one ``detectors.arbitrage`` rules section)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from detectors.base import DetectorParams
from tollguard.numbers import IRSF_COUNTRY_CODES, NumberType


class ArbitrageParams(DetectorParams):
    """Thresholds of ``arbitrage``: counts, minutes and ACD fire at ``>=``, CV and origin ranges at ``<=``.

    Notes
    -----
    Sources of the defaults:

    * warning / critical levels (30 / 60 reward calls, 60 / 120 pumping calls, 30 / 120
      high-cost minutes, ACD 120 s, 3 destinations, 3 origin ranges, factor 5, 5 min/h):
      tollguard's operator defaults for clause 8.2, tuned per customer in the rules file;
    * ``reward_max_duration_cv`` 0.05: human talk times are roughly exponential (CV about
      1, the holding-time model of ITU-T E.500-series traffic engineering); 0.05 is a
      timer;
    * ``high_cost_country_codes``: typical IRSF target lists
      (:data:`tollguard.numbers.IRSF_COUNTRY_CODES`: CFCA Fraud Loss Survey, GSMA IRSF
      hot lists); +371 / +372 are EU members but their premium-like ranges recur there;
    * ``high_cost_number_types``: libphonenumber types of ordinary numbers, plus unknown and
      invalid (IRSF abuses unallocated ranges); premium types are ``premium_destination``'s;
    * ``high_cost_baseline_alpha`` 0.05 per hour: half-life ln 0.5 / ln 0.95 = 13.5 h, so
      the baseline remembers about a day of the customer's traffic.
    """

    window_s: float = Field(3600, ge=60, le=7 * 86_400, description="sliding event-time window, s")
    # a. reward / auto top-up
    reward_enabled: bool = Field(True, description="run the reward / auto top-up check (a)")
    reward_min_calls: int = Field(30, ge=2, le=100_000, description="answered calls to one number → alert")
    reward_critical_calls: int = Field(60, ge=2, le=100_000, description="answered calls to it → suspend")
    reward_max_duration_cv: float = Field(
        0.05, ge=0, le=10, description="max std/mean of billsec_s: robots hang up on a timer, people do not"
    )
    reward_max_destinations: int = Field(3, ge=1, le=1_000, description="'a few numbers'; more widens scope")
    # b. inbound traffic pumping
    pumping_enabled: bool = Field(True, description="run the inbound traffic-pumping check (b)")
    pumping_min_calls: int = Field(60, ge=1, le=1_000_000, description="inbound calls to one DID → alert")
    pumping_critical_calls: int = Field(
        120, ge=1, le=1_000_000, description="inbound calls to one DID → suspension"
    )
    pumping_prefix_digits: int = Field(
        5, ge=1, le=15, description="caller digits after '+' naming an origin range (5 = '+37126': country + range)"
    )
    pumping_max_origin_ranges: int = Field(3, ge=1, le=1_000, description="at most this many caller ranges")
    pumping_min_acd_s: float = Field(120, ge=0, le=86_400, description="mean answered duration >= this, s")
    # c. high-cost minutes above the customer's history
    high_cost_enabled: bool = Field(True, description="run the high-cost minutes check (c)")
    high_cost_country_codes: tuple[str, ...] = Field(
        IRSF_COUNTRY_CODES, description="IRSF target country codes (CFCA survey, GSMA IRSF hot lists)"
    )
    high_cost_number_types: tuple[NumberType, ...] = Field(
        (NumberType.FIXED_LINE, NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE, NumberType.VOIP,
         NumberType.UNKNOWN, NumberType.INVALID),
        description="types counted; unknown/invalid too: IRSF uses unallocated ranges",
    )  # fmt: skip
    high_cost_min_minutes: float = Field(30, gt=0, le=1_000_000, description="answered min in window → alert")
    high_cost_critical_minutes: float = Field(
        120, gt=0, le=1_000_000, description="answered minutes in window → suspension"
    )
    high_cost_history_factor: float = Field(5, ge=1, le=1_000, description="and at least this x the baseline")
    high_cost_baseline_minutes: float = Field(
        5, ge=0, le=1_000_000, description="baseline, minutes per hour, before any hour of history closed"
    )
    high_cost_baseline_alpha: float = Field(
        0.05, gt=0, le=1, description="EWMA weight of each closed hour (half-life 13.5 h: a day of memory)"
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="most recent call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("reward_min_calls", "reward_critical_calls"),
        ("pumping_min_calls", "pumping_critical_calls"),
        ("high_cost_min_minutes", "high_cost_critical_minutes"),
    )
