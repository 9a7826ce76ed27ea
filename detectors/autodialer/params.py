"""Thresholds of ``autodialer``: one model for its checks (one ``detectors.autodialer`` rules section)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from detectors.base import DetectorParams


class AutodialerParams(DetectorParams):
    """Thresholds of ``autodialer``: defaults are the operator's, tuned per customer in the rules file.

    Rates are attempts per minute over the attempts' own span (``(n - 1) / (last start -
    first start)``); shares are fractions of a window's attempts; times are seconds. Every
    threshold is inclusive: ``min_*``, ``warn_*``, ``critical_*``, ``sustained_*`` and
    ``*_signs`` fire at or above, ``max_*`` and ``one_ring_max_s`` at or below.

    Notes
    -----
    Sources: clause 8.2 forbids automatic campaigns and clause 8.7 irregular call-centre
    activity but fixes no figure, so every default is the operator's starting point, to
    be tuned per customer in the rules file. The burst rates (10 and 20 attempts/min: one call
    every 6 s / 3 s from one CLI) are beyond a person dialling by hand; ``max_asr`` 0.25
    sits well below the ASR of people's calls (~0.5-0.7; Sippy: 70 % incumbents, 50 %
    wholesale, 20 % low-quality routes); ``max_acd_s`` 60: dialer ACD is under one minute
    against a conversational ACD of three minutes or more (legalcallsonly; Ziron: under 30 s);
    ``max_acd_s`` was 30 s: campaigns whose calls last 4-56 s average about 30 s and flicker
    around it, so the 20-seed benchmark suspended 16 of 20 campaigns with 30 s and 19 of 20 with
    60 s, benign customers and honest traps silent either way.
    ``max_gap_cv`` 0.3 separates paced dialling (CV ~0) from people (random gaps, CV ~1);
    ``min_sequential_share`` 0.5 is half the attempts in a block sweep, which random
    destinations practically never reach; ``one_ring_max_s`` 3 s is about one ring cycle
    (ITU-T E.180: ~1 s ring, ~4 s silence), the Wangiri bait. The sustained check asks what a
    campaign at half the pace of the slowest field figure does (46labs: at least 5 attempts a
    minute in batches; half is 2.5, and a campaign rotating three CLIs at 6/min puts 2 on
    each): 2 attempts/min from one CLI, one every 30 s, for 20 minutes (ClearIP judges
    robocalling over 60 min; we suspend within a third of it), judged over the last hour.
    Slow Wangiri: 15 one-ring calls (half of what 3 calls/min give in 10 minutes; 5-minute
    buckets per calling number: NexOSS#402, ClearIP) over at least 10 minutes.
    """

    window_s: float = Field(
        300, ge=60, le=86_400, description="burst window of attempt starts, s (5-minute buckets: ClearIP, NexOSS)"
    )
    min_attempts: int = Field(
        30, ge=2, le=100_000, description="attempts in the burst window before the dialer signs are judged"
    )
    warn_attempts_per_min: float = Field(
        10,
        gt=0,
        le=10_000,
        description="burst alert at or above this rate over the attempts' span (one every 6 s; operator default)",
    )
    critical_attempts_per_min: float = Field(
        20,
        gt=0,
        le=10_000,
        description="burst suspension at or above this rate over the attempts' span (one every 3 s; operator default)",
    )
    min_distinct_share: float = Field(
        0.9, ge=0, le=1, description="sign holds when distinct callees / attempts >= this (campaign lists)"
    )
    sequential_max_step: int = Field(
        10, ge=1, le=1_000, description="callees within ±this in their last digits count as a block sweep"
    )
    min_sequential_share: float = Field(
        0.5, ge=0, le=1, description="sign holds when attempts next to another callee / attempts >= this"
    )
    max_asr: float = Field(
        0.25, ge=0, le=1, description="sign holds when answered / attempts <= this (people reach ~0.5-0.7, Sippy)"
    )
    max_acd_s: float = Field(
        60,
        ge=0,
        le=86_400,
        description="sign holds when mean billsec of answered attempts <= this, s (dialers < 1 min: legalcallsonly)",
    )
    max_gap_cv: float = Field(
        0.3,
        ge=0,
        le=100,
        description="sign holds when std/mean of gaps between attempt starts <= this (pacing)",
    )
    min_regular_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="campaign sign holds when attempts dialled while their burst window was paced / attempts >= this",
    )
    warn_signs: int = Field(2, ge=0, le=5, description="signs (of 5) needed with the burst warning rate")
    critical_signs: int = Field(
        3, ge=0, le=5, description="signs (of 5) needed with the burst critical rate and by the sustained check"
    )
    sustained_window_s: float = Field(
        3600, ge=60, le=86_400, description="campaign window of attempt starts, s (ClearIP: robocalling over 60 min)"
    )
    sustained_min_attempts: int = Field(
        20, ge=2, le=100_000, description="attempts in the campaign window before its signs are judged"
    )
    sustained_attempts_per_min: float = Field(
        2,
        gt=0,
        le=10_000,
        description="campaign rate over its span (one attempt every 30 s; half of 46labs' 5/min, rounded down)",
    )
    sustained_warn_s: float = Field(
        600, ge=0, le=86_400, description="campaign span (first to last attempt) with the signs → alert, s"
    )
    sustained_critical_s: float = Field(
        1200, ge=0, le=86_400, description="campaign span (first to last attempt) with the signs → suspension, s"
    )
    one_ring_max_s: float = Field(
        3, ge=0, le=60, description="an unanswered call that rang at most this long is a one-ring call, s"
    )
    wangiri_warn_calls: int = Field(
        30, ge=1, le=1_000_000, description="one-ring calls in the burst window → alert"
    )
    wangiri_critical_calls: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="one-ring calls in the burst window → suspension (with the share below)",
    )
    wangiri_min_share: float = Field(
        0.9, ge=0, le=1, description="one-ring calls / attempts needed for a Wangiri suspension"
    )
    wangiri_sustained_calls: int = Field(
        15,
        ge=1,
        le=1_000_000,
        description="one-ring calls in the campaign window → suspension (half of 3/min for 10 min)",
    )
    wangiri_sustained_s: float = Field(
        600,
        ge=0,
        le=86_400,
        description="span (first to last) those one-ring calls must cover for the slow Wangiri suspension, s",
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="latest call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("warn_attempts_per_min", "critical_attempts_per_min"),
        ("wangiri_warn_calls", "wangiri_critical_calls"),
    )  # a sustained_warn_s at or above sustained_critical_s only means no alert before the suspension
