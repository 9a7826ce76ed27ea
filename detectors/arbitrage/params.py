"""Thresholds of ``arbitrage``: one model for its three checks (one ``detectors.arbitrage`` rules section)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from detectors.base import DetectorParams
from tollguard.numbers import IRSF_COUNTRY_CODES, NumberType


class ArbitrageParams(DetectorParams):
    """Thresholds of ``arbitrage``: counts, minutes, costs, shares and ACD fire at ``>=``, CV at ``<=``.

    Notes
    -----
    Sources of the defaults:

    * pumping ACD 120 s, 3 destinations, 3 origin ranges: tollguard's operator defaults for
      clause 8.2, tuned per customer in the rules file;
    * reward levels, tuned on the 20-seed detection benchmark (``bench/detection.py``,
      bench/README.md "Detection"), counted over the set of numbers: 10 / 15 answered calls
      an hour (schemes run from 15 calls an hour, issue 9; the slowest of the 20 put 17 in
      its busiest hour, 21-29 for the next six; no benign customer or trap has a set of
      near-constant calls of 20 s or more at all); a member number needs 2 such calls (8
      numbers at 15 calls an hour get about 2 each); mean of at least 20 s: an alarm panel's
      Contact ID test report and kiss-off take 8-20 s (the alarm trap's calls averaged 8-18.7 s
      with CV 0.03-0.2, one at 18.7 s and CV 0.04, 98 calls an hour), a scheme pays a billable
      minimum (20 s-3 min; the shortest schemes averaged 21.7-22 s); at most 600 s: longer calls
      of one length are minutes fraud (IRSF calls of 5-60 min, issue 9), the high-cost check's;
    * pumping levels, same benchmark: 18 / 24 calls an hour from the top 3 origin ranges, when
      those carry at least half of the DID's calls (honest DIDs' top 3 ranges: 15-36 % of a
      busy hour; in the hours where they reached half, at most 15 calls with ACD >= 120 s;
      pumping DIDs 62-100 %, the slowest draws, 24-35 calls an hour, put 25-29 calls in their
      busiest hour), and at least 2 x the DID's usual calls an hour when in use (an EWMA over
      its hours with calls, 5 before any such hour closed): a DID whose callers are naturally
      few stays quiet at its usual volume; small honest DIDs' concentrated hours reached 2.8 x
      (below the call levels), and at 3 x one of the 20 pumping draws was missed (35 calls an
      hour from five ranges to a DID of 5 honest calls an hour);
    * high-cost (IRSF) levels, tuned on the 20-seed detection benchmark
      (``bench/detection.py``, bench/README.md "Detection"): 30 / 60 unpriced minutes (two
      lines for half an hour / an hour; two-line attacks put 35-65 answered minutes an hour,
      issue 9) and 30 / 60 of the rate table's currency (the 40-country honest firm's calls
      to listed, priced Latvia and Estonia reached 22.5 in a window of its first day), in a
      3-hour window (attacks run 2-3 h, iCONX), on at least 2 parallel lines; a 24-hour
      cold start (benign customers' first business morning: every destination is new) in
      which unlisted destinations need 20 lines (clause 6.1's 20 calls a DID; the honest
      firm peaked at 14); factor 5 over a listed destination's own baseline;
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
    reward_min_calls: int = Field(
        10, ge=2, le=100_000,
        description="answered calls to a set of numbers sharing a near-constant length → alert (schemes run from "
        "15 calls/h, issue 9)",
    )  # fmt: skip
    reward_critical_calls: int = Field(
        15, ge=2, le=100_000,
        description="answered calls to such a set → suspension (the slowest of 20 benchmark schemes: 17 in its "
        "busiest hour)",
    )  # fmt: skip
    reward_max_duration_cv: float = Field(
        0.05, ge=0, le=10, description="max std/mean of billsec_s: robots hang up on a timer, people do not"
    )
    reward_min_billsec_s: float = Field(
        20, ge=0, le=86_400,
        description="a set's mean billsec at least this, s: reward pays a billable minimum (20 s-3 min); alarm "
        "panels' Contact ID test calls last 8-20 s",
    )  # fmt: skip
    reward_max_billsec_s: float = Field(
        600, gt=0, le=86_400,
        description="and at most this, s: top-up credit is earned per call (benchmark schemes 20-183 s); calls of "
        "many minutes earn by the minute (IRSF, premium: their own checks)",
    )  # fmt: skip
    reward_min_number_calls: int = Field(
        2, ge=2, le=100_000,
        description="a number joins a set with at least this many such calls (8 numbers at 15 calls/h: ~2 each)",
    )  # fmt: skip
    reward_max_destinations: int = Field(
        3, ge=1, le=1_000,
        description="'a few numbers': a set this small dialled from several CLIs is suspended number by number; "
        "more widens to the account",
    )  # fmt: skip
    # b. inbound traffic pumping
    pumping_enabled: bool = Field(True, description="run the inbound traffic-pumping check (b)")
    pumping_min_calls: int = Field(
        18, ge=1, le=1_000_000,
        description="inbound calls to one DID from its top origin ranges → alert (honest concentrated hours: <= 15)",
    )  # fmt: skip
    pumping_critical_calls: int = Field(
        24, ge=1, le=1_000_000,
        description="calls from the top ranges → suspension (pumping from 20 calls/h, issue 9; the slowest "
        "benchmark draws: 25-29 in their busiest hour)",
    )  # fmt: skip
    pumping_prefix_digits: int = Field(
        5, ge=1, le=15, description="caller digits after '+' naming an origin range (5 = '+37126': country + range)"
    )
    pumping_max_origin_ranges: int = Field(
        3, ge=1, le=1_000,
        description="the top this-many origin ranges of a DID's callers are judged together (other ranges may add "
        "calls)",
    )  # fmt: skip
    pumping_min_top_share: float = Field(
        0.5, ge=0, le=1,
        description="the top ranges carry at least this share of the DID's calls (honest busy hours: 0.15-0.36)",
    )
    pumping_baseline_factor: float = Field(
        2, ge=0, le=1_000,
        description="their calls at least this x the DID's usual calls in a window (so a DID whose callers are "
        "few stays quiet at its usual volume)",
    )
    pumping_baseline_calls: float = Field(
        5, ge=0, le=1_000_000,
        description="a DID's usual inbound calls per hour in use before any hour with calls closed (a small office)",
    )
    pumping_baseline_alpha: float = Field(
        0.05, gt=0, le=1,
        description="EWMA weight of each closed hour with calls in a DID's usual load (half-life 13.5 such hours)",
    )
    pumping_min_acd_s: float = Field(
        120, ge=0, le=86_400, description="mean answered duration of the top ranges' calls >= this, s"
    )
    # c. high-cost (IRSF): international traffic to new destinations, by cost or minutes, on parallel lines
    high_cost_enabled: bool = Field(True, description="run the high-cost (IRSF) check (c)")
    high_cost_country_codes: tuple[str, ...] = Field(
        IRSF_COUNTRY_CODES, description="IRSF target country codes (CFCA survey, GSMA IRSF hot lists)"
    )
    high_cost_number_types: tuple[NumberType, ...] = Field(
        (NumberType.FIXED_LINE, NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE, NumberType.VOIP,
         NumberType.UNKNOWN, NumberType.INVALID),
        description="types counted; unknown/invalid too: IRSF uses unallocated ranges",
    )  # fmt: skip
    high_cost_window_s: float = Field(
        10_800, ge=600, le=7 * 86_400,
        description="sliding window of the high-cost check, s (attacks run 2-3 h: iCONX; Sonoc: 60 min on one "
        "number within 3 h); a destination is new while the customer's first call to it is inside it",
    )  # fmt: skip
    high_cost_min_minutes: float = Field(
        30, gt=0, le=1_000_000, description="unpriced answered minutes to new destinations in the window → alert"
    )
    high_cost_critical_minutes: float = Field(
        60, gt=0, le=1_000_000,
        description="unpriced answered minutes to new destinations in the window → suspension (two lines for "
        "an hour; issue 9: two-line IRSF put 35-65 min an hour)",
    )  # fmt: skip
    high_cost_min_cost: float = Field(
        30, gt=0, le=10_000_000,
        description="cost (rate table's currency) of priced calls to new destinations in the window → alert",
    )
    high_cost_critical_cost: float = Field(
        60, gt=0, le=10_000_000,
        description="cost of priced calls to new destinations in the window → suspension (below spend's "
        "hourly 200: new destinations on parallel lines are the narrower sign)",
    )  # fmt: skip
    high_cost_min_lines: int = Field(
        2, ge=1, le=10_000, description="simultaneous answered calls among the counted ones needed (parallel lines)"
    )
    high_cost_cold_start_h: float = Field(
        24, ge=0, le=24 * 90,
        description="hours of a customer's history before unlisted destinations count as new (a day: its first "
        "business day teaches its usual countries)",
    )  # fmt: skip
    high_cost_cold_start_lines: int = Field(
        20, ge=1, le=10_000,
        description="within those hours, unlisted new destinations count only from this many parallel lines "
        "(clause 6.1: a DID's 20 simultaneous calls)",
    )  # fmt: skip
    high_cost_setup_lines: int = Field(
        3, ge=0, le=10_000,
        description="calls up at once (ringing or answered) to new destinations on the high-cost list → suspension "
        "at call setup, with call events only (TransNexus 2019: 111 calls to 37 countries in 16 min; issue 9: "
        "IRSF on 2-30 parallel lines); 0 = off",
    )  # fmt: skip
    high_cost_setup_unlisted_lines: int = Field(
        6, ge=0, le=10_000,
        description="the same for new destinations not on the list (after the cold start); a mix counts by "
        "shares of both; 0 = unlisted ones never count at setup",
    )  # fmt: skip
    high_cost_setup_min_share: float = Field(
        0.5, ge=0, le=1,
        description="…and more than this share of the customer's international calls up are those (an attack's "
        "lines are most of them; a firm calling forty countries has a few new ones among many usual ones)",
    )  # fmt: skip
    high_cost_history_factor: float = Field(
        5, ge=1, le=1_000, description="a listed destination the customer calls counts above this x its baseline"
    )
    high_cost_baseline_alpha: float = Field(
        0.05, gt=0, le=1,
        description="EWMA weight of each closed hour in a listed destination's baseline (half-life 13.5 h)",
    )  # fmt: skip
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="most recent call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("reward_min_calls", "reward_critical_calls"),
        ("pumping_min_calls", "pumping_critical_calls"),
        ("high_cost_min_minutes", "high_cost_critical_minutes"),
        ("high_cost_min_cost", "high_cost_critical_cost"),
    )
