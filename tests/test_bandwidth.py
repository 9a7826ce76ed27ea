"""bandwidth: clause 3.1 (60 kbps per simultaneous call), compliance notices only."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from detectors.bandwidth import BandwidthDetector, BandwidthParams, measure
from detectors.base import CustomerContext, iso
from detectors.codecs import CODECS, lookup, needed_kbps
from tollguard.cdr import Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.testing import BASE_TIME, make_cdr

T0 = BASE_TIME.timestamp()


def ctx(link_kbps=None, **params) -> CustomerContext:
    return CustomerContext(
        "c1", country="IT", params={"bandwidth": BandwidthParams(**params)}, link_kbps=link_kbps
    )


def media_call(i, kbps, codec="PCMA", loss=0.0, media_s=60.0, start_s=None, packets=1000, mos=None, **kw):
    """An answered call whose both directions carry ``kbps`` at the IP layer over ``media_s`` of media.

    ``packets`` are the expected packets a direction; ``loss`` of them are lost (not received).
    """
    start_s = 120.0 * i if start_s is None else start_s
    lost = round(packets * loss)
    packets -= lost
    ip_bytes = kbps * 1000.0 * media_s / 8.0
    rtp_bytes = ip_bytes - 28 * packets
    return make_cdr(
        call_id=f"m{i:03d}",
        start_s=start_s,
        end_s=start_s + media_s,
        codec=codec,
        rtp_in_bytes=rtp_bytes,
        rtp_out_bytes=rtp_bytes,
        rtp_in_packets=packets,
        rtp_out_packets=packets,
        rtp_lost_packets=lost,
        mos=mos,
        **kw,
    )


def run(cdrs, context=None):
    det, context = BandwidthDetector(), context or ctx()
    state = det.initial_state()
    out = []
    for c in sorted(cdrs, key=lambda c: (c.end, c.call_id)):
        out += det.update(state, c, context)
        out += det.advance(state, c.end.timestamp() - 300, context)
    return out, state


# -- codec table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kbps"),
    [
        ("PCMA", 80.0),
        ("PCMU", 80.0),
        ("G711A", 80.0),
        ("G711U", 80.0),
        ("G711", 80.0),
        ("g711-alaw", 80.0),
        ("G722", 80.0),
        ("G729", 24.0),
        ("G729A", 24.0),
        ("G.729ab", 24.0),
        ("GSM", 29.2),
        ("OPUS", 48.0),
        ("opus/48000/2", 48.0),
        ("iLBC", 31.2),
        ("G726-32", 48.0),
        ("PCMU@8000h@20i@64000b", 80.0),
        ("AMR", None),
        ("", None),
        (None, None),
    ],
)
def test_codec_table(name, kbps):
    assert needed_kbps(name) == kbps


def test_codec_needs_follow_from_payload_and_40_header_bytes():
    for codec in CODECS.values():
        assert codec.ip_kbps() == round((codec.payload_kbps * 20 / 8 + 40) * 8 / 20, 1)
    assert lookup("G729").ip_kbps(ptime_ms=30) == 18.7  # 30 bytes + 40 at 33.3 packets/s


# -- per-call measurement ------------------------------------------------------------------


def test_empty_gives_nothing():
    det = BandwidthDetector()
    state = det.initial_state()
    assert det.advance(state, math.inf, ctx(link_kbps=1000)) == []
    assert run([])[0] == []


def test_call_without_counters_and_without_link_returns_early_untouched():
    det = BandwidthDetector()
    state = det.initial_state()
    assert det.update(state, make_cdr(), ctx()) == []
    assert state == det.initial_state()


def test_worked_freeswitch_example_uses_media_time_and_ip_overhead():
    # figures of the FreeSWITCH JSON sample: G722, media from progress_media_time, 28 bytes a packet added
    media_start = BASE_TIME + timedelta(seconds=0.239825)
    c = make_cdr(
        start_s=0,
        answer_s=6.438789,
        end_s=20.979809,
        media_start=media_start,
        codec="G722",
        rtp_in_bytes=181360,
        rtp_in_packets=1031,
        rtp_out_bytes=165780,
        rtp_out_packets=942,
    )
    m = measure(c, BandwidthParams())
    assert round(m["media_s"], 3) == 20.740
    in_kbps = (181360 + 28 * 1031) * 8 / m["media_s"] / 1000
    assert round(in_kbps, 1) == 81.1  # (bytes / billsec would claim ~99.8 without the headers)
    assert round(m["kbps"], 1) == 74.1  # the slower direction
    assert m["need_kbps"] == 80.0 and m["loss"] is None


@pytest.mark.parametrize(
    ("kw", "kbps", "need"),
    [
        ({"codec": "PCMA", "rtp_in_bytes": 300_000}, 51.2, 80.0),  # no packet count: + 28 B x 50 pps = 11.2
        ({"codec": None, "rtp_in_bytes": 172_000, "rtp_in_packets": 1000}, 26.67, 80.0),  # 172-byte packets
        ({"codec": "AMR-WB", "rtp_in_bytes": 32_000, "rtp_in_packets": 1000}, 8.0, 24.0),  # 32-byte packets
    ],
)
def test_measure_without_packets_or_codec(kw, kbps, need):
    m = measure(make_cdr(start_s=0, end_s=60, **kw), BandwidthParams())
    assert round(m["kbps"], 2) == kbps and m["need_kbps"] == need


@pytest.mark.parametrize(
    "cdr",
    [
        make_cdr(start_s=0, end_s=60, disposition=Disposition.NO_ANSWER, rtp_in_bytes=1000, codec="PCMA"),
        make_cdr(start_s=0, end_s=60, codec="PCMA"),  # no counters
        make_cdr(start_s=0, end_s=60, codec="PCMA", rtp_in_bytes=0, rtp_out_bytes=0),  # no media flowed
        make_cdr(start_s=0, end_s=60, rtp_in_bytes=300_000),  # unknown codec and no packets
        make_cdr(start_s=0, end_s=9.9, codec="PCMA", rtp_in_bytes=30_000, rtp_in_packets=100),  # < 10 s media
    ],
)
def test_calls_that_are_not_judged(cdr):
    assert measure(cdr, BandwidthParams()) is None


def test_g729_at_31_kbps_is_fine_even_with_loss():
    calls = [media_call(i, 31.0, codec="G729") for i in range(5)]
    calls += [media_call(10 + i, 31.0, codec="G729", loss=0.05) for i in range(5)]
    decisions, state = run(calls)
    assert decisions == [] and state["bad"] == [] and len(state["ok"]) == 10


def test_g711_at_40_kbps_with_5pct_loss_gives_a_notice():
    decisions, _ = run([media_call(i, 40.0, codec="PCMA", loss=0.05) for i in range(5)])
    assert len(decisions) == 1
    d = decisions[0]
    assert (d.type, d.level, d.scope_kind, d.scope_value) == (
        EventType.COMPLIANCE_NOTICE,
        "notice",
        ScopeKind.ACCOUNT,
        "c1",
    )
    ev = d.evidence
    assert (ev["codec"], ev["measured_kbps"], ev["needed_kbps"]) == ("PCMA", 40.0, 80.0)
    assert (ev["bad_calls"], ev["judged_calls"], ev["bad_share"]) == (3, 3, 1.0)
    assert ev["median_loss_ratio"] == 0.05
    assert ev["sample_call_ids"] == ["m000", "m001", "m002"]
    assert ev["thresholds"]["min_kbps_per_call"] == 60
    assert d.episode == f"calls@{iso(T0 + 60)}" and d.occurred_at_s == T0 + 2 * 120 + 60
    assert "40.0 kbps" in d.reason and "80.0 kbps" in d.reason and "3.1" in d.reason


@pytest.mark.parametrize(
    ("kw", "bad"),
    [
        ({"kbps": 60.0, "loss": 0.05}, False),  # exactly 60 kbps: complies (below fires)
        ({"kbps": 59.9, "loss": 0.05}, True),
        ({"kbps": 40.0, "loss": 0.02}, True),  # loss exactly at 2 %: inclusive
        ({"kbps": 40.0, "loss": 0.019}, False),
        ({"kbps": 40.0, "mos": 3.5}, True),  # MOS exactly 3.5: inclusive
        ({"kbps": 40.0, "mos": 3.6}, False),
        ({"kbps": 40.0, "codec": "GSM", "loss": 0.05}, False),  # GSM needs 29.2: 40 is plenty
        ({"kbps": 26.2, "codec": "GSM", "loss": 0.05}, True),  # < 0.9 x 29.2 = 26.28
        ({"kbps": 40.0, "loss": 0.05, "media_s": 9.9}, None),  # not judged
        ({"kbps": 40.0, "loss": 0.05, "media_s": 10.0}, True),
    ],
)
def test_bad_call_rows(kw, bad):
    _, state = run([media_call(0, **kw)])
    if bad is None:
        assert state["ok"] == [] and state["bad"] == []
    else:
        assert (len(state["bad"]), len(state["ok"])) == ((1, 0) if bad else (0, 1))


@pytest.mark.parametrize(
    ("n_bad", "n_ok", "fires"),
    [
        (2, 0, False),  # below min_bad_calls
        (3, 0, True),
        (3, 12, True),  # 3 / 15 = 0.2: inclusive
        (3, 13, False),  # 3 / 16 = 0.1875
    ],
)
def test_notice_thresholds(n_bad, n_ok, fires):
    ok = [media_call(i, 80.0, start_s=i * 10.0) for i in range(n_ok)]
    bad = [media_call(100 + i, 40.0, loss=0.05, start_s=1000 + i * 10.0) for i in range(n_bad)]
    decisions, _ = run(ok + bad)
    assert bool(decisions) is fires


@pytest.mark.parametrize(("media_start_s", "fires"), [(0.0, True), (None, False)])
def test_rate_is_divided_by_media_time_not_billsec(media_start_s, fires):
    # 500 000 IP bytes: over 100 s of media (early media from 0 s) = 40 kbps, over 60 s billsec = 66.7 kbps
    calls = []
    for i in range(3):
        s = 200.0 * i
        calls.append(
            make_cdr(
                call_id=f"e{i}",
                start_s=s,
                answer_s=s + 40,
                end_s=s + 100,
                codec="PCMU",
                media_start=None
                if media_start_s is None
                else BASE_TIME + timedelta(seconds=s + media_start_s),
                rtp_in_bytes=500_000 - 28 * 1000,
                rtp_in_packets=1000,
                rtp_lost_packets=100,
            )
        )
    decisions, state = run(calls)
    assert bool(decisions) is fires
    if fires:
        assert decisions[0].evidence["measured_kbps"] == 40.0
    else:
        assert len(state["ok"]) == 3


def test_one_notice_per_episode_and_a_new_one_after_a_quiet_window():
    first = [media_call(i, 40.0, loss=0.05) for i in range(6)]  # bad calls 0..660 s
    later = [media_call(100 + i, 40.0, loss=0.05, start_s=5000 + 120 * i) for i in range(3)]  # > 1 h later
    decisions, _ = run(first + later)
    assert len(decisions) == 2 and decisions[0].episode != decisions[1].episode


# -- declared link ---------------------------------------------------------------------------


def overlapping(n, length_s=600.0):
    """n calls that all overlap at second n - 1 (staggered by 1 s), no media counters."""
    return [make_cdr(call_id=f"o{i:03d}", start_s=i, end_s=length_s + i) for i in range(n)]


@pytest.mark.parametrize(
    ("link", "n", "fires"),
    [
        (1000, 16, False),  # 62.5 kbps per call
        (1000, 17, True),  # 58.8
        (1000, 20, True),  # 50.0
        (1200, 20, False),  # exactly 60.0: complies
        (1200, 21, True),
    ],
)
def test_declared_link_per_call(link, n, fires):
    decisions, _ = run(overlapping(n), ctx(link_kbps=link))
    assert len(decisions) == int(fires)
    if fires:
        d = decisions[0]
        assert (d.type, d.level, d.scope_kind, d.scope_value, d.clause) == (
            EventType.COMPLIANCE_NOTICE,
            "notice",
            ScopeKind.ACCOUNT,
            "c1",
            None,
        )
        peak = math.floor(link / 60) + 1  # the first peak that breaches; later growth is the same episode
        ev = d.evidence
        assert ev["link_kbps"] == link and ev["peak_calls"] == peak
        assert ev["kbps_per_call"] == round(link / peak, 1) and ev["needed_kbps_per_call"] == 60
        assert ev["supported_calls"] == peak - 1
        assert ev["peak_at"] == iso(T0 + peak - 1)
        assert ev["sample_call_ids"] == [f"o{i:03d}" for i in range(peak - 10, peak)]


def test_declared_link_notice_fires_at_first_breach_and_the_episode_tracks_the_peak():
    # 20 calls over the same 300 s on a 1000 kbps link: 50 kbps per call at the end
    calls = [make_cdr(call_id=f"s{i:02d}", start_s=0, end_s=300) for i in range(20)]
    decisions, state = run(calls, ctx(link_kbps=1000))
    (d,) = decisions
    assert (d.evidence["peak_calls"], d.evidence["kbps_per_call"]) == (17, 58.8)  # proven at the 17th call
    assert "58.8 kbps per call" in d.reason and "1000 kbps" in d.reason
    assert state["link"]["peak"] == 20 and 1000 / state["link"]["peak"] == 50.0
    assert d.episode == f"link@{iso(T0)}"


def test_link_peak_counts_media_time_only():
    # 17 calls ringing 100 s unanswered and 16 answered ones: only the answered carry media
    ringing = [
        make_cdr(call_id=f"r{i}", start_s=i, end_s=100 + i, disposition=Disposition.NO_ANSWER)
        for i in range(17)
    ]
    answered = [make_cdr(call_id=f"a{i}", start_s=i, end_s=100 + i) for i in range(16)]
    assert run(ringing + answered, ctx(link_kbps=1000))[0] == []
    early = [c.model_copy(update={"media_start": c.start}) for c in ringing[:1]]  # early media uses the link
    assert len(run(early + answered, ctx(link_kbps=1000))[0]) == 1


def test_advance_to_end_clears_the_state():
    det, context = BandwidthDetector(), ctx(link_kbps=1000)
    state = det.initial_state()
    for c in [*overlapping(20), media_call(50, 40.0, loss=0.05, start_s=700)]:
        det.update(state, c, context)
    det.advance(state, math.inf, context)
    assert state == det.initial_state()
