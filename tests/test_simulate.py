"""Tests of the labelled traffic generator (tollguard.simulate)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.simulate import (
    EPISODE_DEFAULTS,
    EPISODE_KINDS,
    HIGH_COST_PREFIXES,
    HIGH_RISK_PREFIXES,
    NEW_COUNTRY_PREFIXES,
    REQUIRED_LEVEL,
    SCENARIOS,
    CustomerProfile,
    Episode,
    default_profiles,
    run_scenario,
    scenario,
    simulate,
    write,
    write_labels,
)

TUESDAY = datetime(2025, 3, 11, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def peak_concurrency(records: list[CallDetailRecord]) -> int:
    """Exact peak of simultaneous calls; a call ending when another starts does not overlap it."""
    events = []
    for r in records:
        events.append((r.start, 1))
        events.append((r.end, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # ends (-1) before starts (+1) at the same instant
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def peaks_by_did(records: list[CallDetailRecord]) -> dict[str, int]:
    by_did: dict[str, list[CallDetailRecord]] = defaultdict(list)
    for r in records:
        if r.did is not None:
            by_did[r.did].append(r)
    return {did: peak_concurrency(rs) for did, rs in by_did.items()}


def number_type(e164: str) -> int:
    return phonenumbers.number_type(phonenumbers.parse(e164))


def is_premium(e164: str) -> bool:
    return e164.startswith(HIGH_RISK_PREFIXES) or number_type(e164) in (
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
    )


def asr(records: list[CallDetailRecord]) -> float:
    return sum(r.answered for r in records) / len(records)


def digest(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.model_dump_json(exclude_none=True).encode())
        h.update(b"\n")
    return h.hexdigest()


@pytest.fixture(scope="module")
def benign_day():
    profiles = default_profiles(5, seed=11)
    sim = simulate(TUESDAY, 1440, profiles, [], seed=11)
    return profiles, list(sim)


@pytest.fixture(scope="module")
def all_day():
    """Scenario "all": 10 customers, one episode of each kind, one day."""
    sim = run_scenario("all", start=TUESDAY, minutes=1440, customers=10, seed=3)
    records = list(sim)
    by_id = {r.call_id: r for r in records}
    episodes = {lab.kind: (lab, [by_id[c] for c in lab.call_ids]) for lab in sim.labels}
    return sim, records, episodes


# --------------------------------------------------------------------------- determinism and order


def test_same_seed_same_output_and_other_seed_differs():
    profiles = default_profiles(8, seed=5)
    eps = scenario("all", profiles, 1440)
    first = digest(itertools.islice(simulate(TUESDAY, 1440, profiles, eps, seed=5), 1000))
    again = digest(itertools.islice(simulate(TUESDAY, 1440, default_profiles(8, seed=5), eps, seed=5), 1000))
    other = digest(itertools.islice(simulate(TUESDAY, 1440, profiles, eps, seed=6), 1000))
    assert first == again
    assert first != other


def test_records_can_be_iterated_twice_with_identical_output():
    sim = run_scenario("autodialer", start=TUESDAY, minutes=720, customers=3, seed=2)
    a = [r.model_dump_json() for r in sim.records()]
    ids_a = list(sim.labels[0].call_ids)
    b = [r.model_dump_json() for r in sim.records()]
    assert a == b
    assert sim.labels[0].call_ids == ids_a and len(ids_a) == sim.labels[0].n_calls


def test_sorted_by_end_and_ids_in_arrival_order(all_day):
    _, records, _ = all_day
    ends = [r.end for r in records]
    assert ends == sorted(ends)
    assert [r.call_id for r in records] == [f"sim-3-{n:08d}" for n in range(1, len(records) + 1)]


def test_disorder_jitter_is_bounded_and_keeps_the_calls():
    profiles = default_profiles(4, seed=9)
    ordered = list(simulate(TUESDAY, 600, profiles, [], seed=9))
    jittered = list(simulate(TUESDAY, 600, profiles, [], seed=9, disorder_s=30))
    strip = {"call_id"}
    assert sorted(r.model_dump_json(exclude=strip) for r in ordered) == sorted(
        r.model_dump_json(exclude=strip) for r in jittered
    )
    ends = [r.end for r in jittered]
    assert ends != sorted(ends)
    latest = ends[0]
    for end in ends:
        assert (latest - end).total_seconds() <= 30
        latest = max(latest, end)


def test_zero_customers_or_zero_minutes_yield_nothing():
    assert list(simulate(TUESDAY, 1, [], [], seed=1)) == []
    assert list(simulate(TUESDAY, 0, default_profiles(3, seed=1), [], seed=1)) == []
    assert list(run_scenario("benign", start=TUESDAY, minutes=1, customers=0)) == []


def test_records_are_valid_models(all_day):
    _, records, _ = all_day
    for r in records[::50]:
        again = CallDetailRecord.model_validate_json(r.model_dump_json())
        assert again == r
        assert r.duration_s == pytest.approx((r.end - r.start).total_seconds(), abs=1e-6)
        if r.answer is not None:
            assert r.billsec_s == pytest.approx((r.end - r.answer).total_seconds(), abs=1e-6)
        else:
            assert r.billsec_s == 0


# --------------------------------------------------------------------------- profiles


def test_default_profiles_are_realistic():
    profiles = default_profiles(30, seed=4)
    assert [p.customer_id for p in profiles[:3]] == ["cust-001", "cust-002", "cust-003"]
    dids = [d for p in profiles for d in p.dids]
    assert len(dids) == len(set(dids))
    for p in profiles:
        assert p.country in {"IT", "DE", "GB", "FR"}
        assert 0.55 <= p.answer_ratio <= 0.7 and 120 <= p.mean_talk_s <= 240
        assert p.codec in {"PCMA", "G729"}
        for did in p.dids:
            num = phonenumbers.parse(did)
            assert phonenumbers.is_valid_number(num)
            assert phonenumbers.number_type(num) == PhoneNumberType.FIXED_LINE
            assert phonenumbers.region_code_for_number(num) == p.country
    assert sum(p.country == "IT" for p in profiles) > len(profiles) / 2
    assert default_profiles(0, seed=1) == []


# --------------------------------------------------------------------------- benign traffic


def test_benign_day_asr_and_did_concurrency(benign_day):
    _, records = benign_day
    assert len(records) > 1000
    assert 0.5 <= asr(records) <= 0.75
    peaks = peaks_by_did(records)
    assert peaks and max(peaks.values()) <= 15


def test_benign_numbers_are_valid_e164(benign_day):
    profiles, records = benign_day
    own = {d for p in profiles for d in p.dids}
    for r in records:
        if r.direction is Direction.INTERNAL:
            assert r.did is None and r.caller.isdigit() and r.callee.isdigit()
            continue
        for number in (r.caller, r.callee):
            if number == "112":
                assert r.direction is Direction.OUTBOUND
                continue
            assert number.startswith("+"), number
            assert phonenumbers.is_valid_number(phonenumbers.parse(number)), number
        assert r.did in own
        assert r.did == (r.callee if r.direction is Direction.INBOUND else r.caller)
        assert r.caller_raw and r.callee_raw


def test_benign_traffic_looks_like_no_episode(benign_day):
    _, records = benign_day
    outbound = [r for r in records if r.direction is Direction.OUTBOUND]
    callees = [r.callee for r in outbound if r.callee != "112"]
    assert not any(is_premium(c) for c in callees)
    assert not any(c.startswith(HIGH_COST_PREFIXES + NEW_COUNTRY_PREFIXES) for c in callees)
    # toll-free numbers are called now and then
    assert any(number_type(c) == PhoneNumberType.TOLL_FREE for c in callees)
    # no one-ring unanswered calls, destinations are mostly distinct
    assert not any(r.disposition is Disposition.NO_ANSWER and r.duration_s <= 3 for r in records)
    assert len(set(callees)) > 0.6 * len(callees)
    # night (00-05 UTC) carries little traffic compared with the business day
    night = sum(r.start.hour < 5 for r in records)
    day = sum(9 <= r.start.hour < 14 for r in records)
    assert night < 0.05 * day


def test_benign_media_counters_are_healthy(benign_day):
    _, records = benign_day
    answered = [r for r in records if r.answered and r.billsec_s >= 5]
    assert answered
    for r in answered:
        per_packet = {"PCMA": 172, "G729": 32}[r.codec]
        assert r.rtp_out_packets == pytest.approx(50 * r.billsec_s, abs=1)
        assert r.rtp_out_bytes == r.rtp_out_packets * per_packet
        assert r.rtp_in_bytes == r.rtp_in_packets * per_packet
        assert r.rtp_lost_packets <= 0.005 * r.rtp_out_packets
        assert r.rtp_in_packets + r.rtp_lost_packets == r.rtp_out_packets
        assert (4.1 <= r.mos <= 4.4) if r.codec == "PCMA" else (3.9 <= r.mos <= 4.1)
        assert r.media_start == r.answer
        kbps = r.rtp_in_bytes * 8 / r.billsec_s / 1000
        assert kbps >= (68.0 if r.codec == "PCMA" else 12.5)
    for r in records:
        if not r.answered:
            assert r.rtp_in_bytes is None and r.mos is None


# --------------------------------------------------------------------------- episodes


def test_every_kind_has_its_labelled_calls(all_day):
    sim, _, episodes = all_day
    assert set(episodes) == set(EPISODE_KINDS)
    assert len({lab.customer_id for lab in sim.labels}) == len(EPISODE_KINDS)
    for lab, calls in episodes.values():
        assert lab.n_calls == len(calls) > 0
        assert all(c.customer_id == lab.customer_id for c in calls)
        assert lab.start == min(c.start for c in calls) and lab.end == max(c.end for c in calls)
        assert lab.scope["kind"] in {"did", "cli", "account"}
    assert len({c for lab in sim.labels for c in lab.call_ids}) == sum(lab.n_calls for lab in sim.labels)


def test_premium_destination(all_day):
    _, _, episodes = all_day
    lab, calls = episodes["premium_destination"]
    assert lab.n_calls == 40 and lab.scope == {"kind": "account", "value": lab.customer_id}
    assert all(c.direction is Direction.OUTBOUND and is_premium(c.callee) for c in calls)
    assert len({c.callee for c in calls}) == 6
    answered = [c for c in calls if c.answered]
    assert asr(calls) >= 0.6
    assert min(c.billsec_s for c in answered) >= 120
    assert sum(c.billsec_s for c in answered) / len(answered) >= 300
    assert (lab.end - lab.start).total_seconds() <= 20 * 60 + 1800 + 40


def test_arbitrage_reward(all_day):
    _, _, episodes = all_day
    lab, calls = episodes["arbitrage_reward"]
    assert lab.n_calls == 150 and lab.scope["kind"] == "cli"
    assert {c.caller for c in calls} == {lab.scope["value"]}
    assert 1 <= len({c.callee for c in calls}) <= 3
    assert all(c.answered and 60.0 <= c.billsec_s <= 62.0 for c in calls)


def test_arbitrage_pumping(all_day):
    _, records, episodes = all_day
    lab, calls = episodes["arbitrage_pumping"]
    assert lab.n_calls == 200 and lab.scope["kind"] == "did"
    assert all(c.direction is Direction.INBOUND and c.callee == c.did == lab.scope["value"] for c in calls)
    assert all(c.caller.startswith(("+37126", "+447624")) for c in calls)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(c.caller)) for c in calls)
    assert asr(calls) >= 0.85
    assert all(c.billsec_s >= 120 for c in calls if c.answered)
    assert (lab.end - lab.start).total_seconds() <= 3600 + 400
    # the pumped DID stays below the contractual 20 simultaneous calls
    assert peak_concurrency([r for r in records if r.did == lab.scope["value"]]) < 20


def test_arbitrage_high_cost(all_day):
    _, _, episodes = all_day
    lab, calls = episodes["arbitrage_high_cost"]
    assert all(c.callee.startswith(HIGH_COST_PREFIXES) for c in calls)
    talk_minutes = sum(c.billsec_s for c in calls) / 60
    assert 300 <= talk_minutes <= 300 + 15
    window_start = lab.start.replace(minute=0, second=0, microsecond=0)  # the "all" slot starts on the hour
    assert all(c.start < window_start + timedelta(hours=1) for c in calls)


def test_autodialer(all_day):
    _, _, episodes = all_day
    lab, calls = episodes["autodialer"]
    assert lab.n_calls == 600 and lab.scope["kind"] == "cli"
    calls = sorted(calls, key=lambda c: c.start)
    assert {c.caller for c in calls} == {lab.scope["value"]}
    numbers = [int(c.callee[1:]) for c in calls]
    assert numbers == list(range(numbers[0], numbers[0] + 600))
    assert calls[0].callee.endswith("1000")
    assert asr(calls) < 0.2
    answered = [c for c in calls if c.answered]
    assert all(8 <= c.billsec_s <= 20 for c in answered)
    gaps = [(b.start - a.start).total_seconds() for a, b in itertools.pairwise(calls)]
    assert all(1.8 <= g <= 2.2 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(2.0, abs=0.01)


def test_wangiri(all_day):
    _, _, episodes = all_day
    lab, calls = episodes["wangiri"]
    assert lab.n_calls == 300 and lab.scope["kind"] == "cli"
    assert {c.caller for c in calls} == {lab.scope["value"]}
    assert all(c.disposition is Disposition.NO_ANSWER and c.answer is None for c in calls)
    assert all(1.0 <= c.duration_s <= 3.0 and c.hangup_cause in (16, 19) for c in calls)
    assert len({c.callee for c in calls}) == 300
    assert len({phonenumbers.region_code_for_number(phonenumbers.parse(c.callee)) for c in calls}) >= 4


def test_did_concurrency_default_peak_is_exactly_24(all_day):
    _, records, episodes = all_day
    lab, calls = episodes["did_concurrency"]
    did = lab.scope["value"]
    assert lab.scope["kind"] == "did"
    assert all(c.direction is Direction.INBOUND and c.did == did for c in calls)
    assert peak_concurrency([r for r in records if r.did == did]) == 24
    assert all(300 <= c.billsec_s <= 900 for c in calls)


@pytest.mark.parametrize("n", [20, 21, 37])
def test_did_concurrency_peak_is_the_parameter(n):
    profiles = default_profiles(3, seed=n)
    ep = Episode("did_concurrency", profiles[1].customer_id, 30, 45, {"n_concurrent": n})
    sim = simulate(TUESDAY.replace(hour=8), 120, profiles, [ep], seed=n)
    records = list(sim)
    did = sim.labels[0].scope["value"]
    assert did not in profiles[1].dids  # the call-centre number is not used by benign traffic
    assert peak_concurrency([r for r in records if r.did == did]) == n


def test_bandwidth(all_day):
    _, records, episodes = all_day
    lab, calls = episodes["bandwidth"]
    assert lab.scope == {"kind": "account", "value": lab.customer_id}
    assert peak_concurrency(calls) == 6
    for c in calls:
        assert c.answered and c.codec in {"PCMA", "PCMU"}
        kbps = c.rtp_in_bytes * 8 / c.billsec_s / 1000
        assert 35.0 <= kbps <= 40.5
        assert c.rtp_lost_packets > 0.02 * c.rtp_out_packets
        assert 2.3 <= c.mos <= 2.8
    # the customer's benign calls are suppressed inside the window (the link is the episode's)
    ids = set(lab.call_ids)
    window_end = lab.start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert not [
        r
        for r in records
        if r.customer_id == lab.customer_id and r.call_id not in ids and lab.start <= r.start < window_end
    ]


def test_volume_anomaly(all_day):
    _, records, episodes = all_day
    lab, calls = episodes["volume_anomaly"]
    profile = next(p for p in default_profiles(10, seed=3) if p.customer_id == lab.customer_id)
    out_per_hour = profile.calls_per_hour_peak * (1 - profile.inbound_share - profile.internal_share)
    expected = 5 * out_per_hour * 2
    assert 0.7 * expected <= lab.n_calls <= 1.3 * expected
    for c in calls:
        assert c.callee.startswith(NEW_COUNTRY_PREFIXES)
        assert number_type(c.callee) == PhoneNumberType.MOBILE
        assert not is_premium(c.callee)
    assert 0.45 <= asr(calls) <= 0.75
    assert all(c.start.hour < 4 for c in calls)  # 01:00-03:00 UTC, night in Europe
    ids = set(lab.call_ids)
    assert not any(r.callee.startswith(NEW_COUNTRY_PREFIXES) for r in records if r.call_id not in ids)


def test_episode_outside_the_run_has_no_calls():
    profiles = default_profiles(2, seed=1)
    sim = simulate(TUESDAY, 30, profiles, [Episode("wangiri", "cust-001", 45, 10)], seed=1)
    list(sim)
    assert sim.labels[0].n_calls == 0 and sim.labels[0].call_ids == []


def test_episode_validation():
    with pytest.raises(ValueError, match="kind"):
        Episode("nonsense", "cust-001", 0, 10)
    with pytest.raises(ValueError, match="unknown params"):
        Episode("autodialer", "cust-001", 0, 10, {"rate": 3})
    with pytest.raises(ValueError, match="unknown customer"):
        simulate(TUESDAY, 10, default_profiles(1, seed=1), [Episode("autodialer", "cust-999", 0, 5)], seed=1)
    with pytest.raises(ValueError, match=r"time zone|timezone"):
        simulate(datetime(2025, 3, 11), 10, [], [], seed=1)
    assert set(EPISODE_DEFAULTS) == set(EPISODE_KINDS)


# --------------------------------------------------------------------------- scenarios and output


def test_scenarios():
    profiles = default_profiles(10, seed=1)
    assert SCENARIOS == ("benign", "all", *EPISODE_KINDS, "varied", "traps")
    assert scenario("benign", profiles) == [] and scenario("traps", profiles) == []
    eps = scenario("all", profiles, 1440)
    assert [e.kind for e in eps] == list(EPISODE_KINDS)
    assert len({e.customer_id for e in eps}) == len(EPISODE_KINDS)
    for kind in EPISODE_KINDS:
        (ep,) = scenario(kind, profiles, 60)
        assert ep.kind == kind and ep.start_offset_min + ep.duration_min <= 60
    with pytest.raises(ValueError, match="scenario"):
        scenario("nope", profiles)


def test_write_jsonl_and_labels(tmp_path):
    sim = run_scenario("wangiri", start=TUESDAY, minutes=360, customers=2, seed=4)
    out = tmp_path / "cdrs.jsonl"
    n = write(sim, "jsonl", out)
    lines = out.read_text().splitlines()
    assert n == len(lines) > 300
    first = CallDetailRecord.model_validate_json(lines[0])
    assert first.call_id == "sim-4-00000001"
    buf = io.StringIO()
    assert write_labels(sim.labels, buf) == 1
    label = json.loads(buf.getvalue())
    assert label["kind"] == "wangiri" and label["n_calls"] == len(label["call_ids"]) == 300
    assert label["scope"]["kind"] == "cli" and label["start"].endswith("Z")
    ids = {json.loads(line)["call_id"] for line in lines}
    assert set(label["call_ids"]) <= ids


@pytest.mark.parametrize("fmt", ["jsonl", "asterisk-csv", "freeswitch-csv", "freeswitch-json"])
def test_write_formats_replay_through_the_adapters(fmt):
    from tollguard.adapters import parse_line
    from tollguard.adapters.settings import IngestSettings
    from tollguard.simulate.writers import extension_globs

    profiles = default_profiles(4, seed=8)
    country = {p.customer_id: p.country for p in profiles}
    # the PBXs' extensions 200.. overlap short codes (FR 224, GB 202 / 222 / 248): the rules name them
    settings = IngestSettings(extensions=tuple(extension_globs(profiles)))
    sim = simulate(TUESDAY.replace(hour=8), 240, profiles, scenario("all", profiles, 240), seed=8)
    records = list(sim)
    buf = io.StringIO()
    assert write(records, fmt, buf) == len(records)
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(records)
    for record, line in zip(records, lines, strict=True):
        back = parse_line(fmt, line, settings=settings, country_of=country.__getitem__)
        if fmt == "jsonl":
            assert back == record
            continue
        if record.callee == "112":  # a short number: the adapters' direction rules may call it internal
            continue
        assert (back.customer_id, back.direction, back.caller, back.callee, back.did, back.disposition) == (
            record.customer_id,
            record.direction,
            record.caller,
            record.callee,
            record.did,
            record.disposition,
        )
        assert abs(back.duration_s - record.duration_s) <= 1


def test_write_rejects_unknown_format():
    with pytest.raises(ValueError, match="format"):
        write([], "xml", io.StringIO())


def test_profile_is_frozen():
    p = default_profiles(1, seed=1)[0]
    assert isinstance(p, CustomerProfile)
    with pytest.raises(AttributeError):
        p.codec = "G729"  # type: ignore[misc]


# --------------------------------------------------------------------------- variety and honest traps

FRIDAY = datetime(2025, 3, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def varied():
    """Scenario "varied": 24 customers drawn wide, one drawn episode of each kind, the honest traps, 48 h."""
    sim = run_scenario("varied", start=FRIDAY, minutes=2880, customers=24, seed=5)
    records = list(sim)
    by_id = {r.call_id: r for r in records}
    episodes = {lab.kind: (lab, [by_id[c] for c in lab.call_ids]) for lab in sim.labels}
    traps = {lab.kind: (lab, [by_id[c] for c in lab.call_ids]) for lab in sim.trap_labels}
    return sim, records, episodes, traps


def test_classic_labels_carry_the_required_level(all_day):
    sim, _, _ = all_day
    assert {lab.kind: lab.required_level for lab in sim.labels} == REQUIRED_LEVEL
    assert sim.trap_labels == []
    assert all("time_of_day" not in lab.params for lab in sim.labels)  # nothing drawn in the classic mode


def test_variety_is_seeded_and_off_by_default():
    first = digest(itertools.islice(run_scenario("all", start=FRIDAY, minutes=600, customers=12, seed=2,
                                                 variety=True), 2000))
    again = digest(itertools.islice(run_scenario("all", start=FRIDAY, minutes=600, customers=12, seed=2,
                                                 variety=True), 2000))
    other = digest(itertools.islice(run_scenario("all", start=FRIDAY, minutes=600, customers=12, seed=3,
                                                 variety=True), 2000))
    classic = digest(itertools.islice(run_scenario("all", start=FRIDAY, minutes=600, customers=12, seed=2), 2000))
    assert first == again and first != other and first != classic


def _within(value, rng_spec, slack=1e-6):
    return rng_spec.lo - slack <= value <= rng_spec.hi + slack


def test_drawn_episodes_stay_in_their_documented_ranges():
    import random

    from tollguard.simulate.variety import EPISODE_RANGES, IRSF_RANGES, PUMPING_ORIGINS, C, R, draw_episodes

    profiles = default_profiles(30, seed=9, variety=True)
    seen = defaultdict(set)
    for seed in range(40):
        eps = draw_episodes(list(EPISODE_KINDS), profiles, 2880, random.Random(seed), FRIDAY)
        assert len({e.customer_id for e in eps}) == len(EPISODE_KINDS)
        for ep in eps:
            spec = EPISODE_RANGES[ep.kind]
            assert _within(ep.duration_min, spec["duration_min"])
            assert 120 <= ep.start_offset_min and ep.start_offset_min + ep.duration_min <= 2880 - 15
            assert ep.drawn["time_of_day"] in {"business", "evening", "night"}
            prm = ep.effective_params()
            for key, value in prm.items():
                rng_spec = spec.get(key)
                if isinstance(rng_spec, R) and isinstance(value, int | float) and not isinstance(value, bool):
                    assert _within(value, rng_spec), (ep.kind, key, value)
                    seen[(ep.kind, key)].add(value)
                elif isinstance(rng_spec, C):
                    assert value in rng_spec.options, (ep.kind, key, value)
            if ep.kind == "arbitrage_reward":
                assert 2 <= prm["n_destinations"] <= 8
            if ep.kind == "arbitrage_pumping":
                assert 1 <= len(prm["origin_prefixes"]) <= 5 and set(prm["origin_prefixes"]) <= set(PUMPING_ORIGINS)
            if ep.kind == "arbitrage_high_cost":
                assert 2 <= prm["lanes"] <= 30 and set(prm["prefixes"]) <= set(IRSF_RANGES)
                assert (prm["talk_min_s"], prm["talk_max_s"]) == (300.0, 3600.0)
            if ep.kind == "autodialer":
                assert 6 <= prm["attempts_per_min"] <= 40 and 20 <= ep.duration_min <= 180
    # the draws spread: the slow and the fast end both occur
    rates = seen[("autodialer", "attempts_per_min")]
    assert min(rates) < 10 and max(rates) > 25
    lanes = seen[("arbitrage_high_cost", "lanes")]
    assert min(lanes) <= 4 and max(lanes) >= 15


def test_varied_labels_carry_params_first_call_scope_and_level(varied):
    sim, _, episodes, _ = varied
    assert set(episodes) == set(EPISODE_KINDS)
    for kind, (lab, calls) in episodes.items():
        assert lab.required_level == REQUIRED_LEVEL[kind]
        assert lab.n_calls == len(calls) > 0
        assert lab.start == min(c.start for c in calls)
        assert lab.params["time_of_day"] in {"business", "evening", "night"}
        assert {"start_offset_min", "duration_min"} <= set(lab.params)
        assert lab.scope["kind"] in {"did", "cli", "account"}
        if lab.scope["kind"] == "cli":
            assert {c.caller for c in calls} == {lab.scope["value"]}
    label = json.loads(json.dumps(sim.labels[0].to_json_dict()))
    assert label["required_level"] == "suspension" and label["params"]["time_of_day"]


def _peak(calls):
    return peak_concurrency([c for c in calls if c.answered])


def test_varied_episode_shapes(varied):
    _, _, episodes, _ = varied
    lab, calls = episodes["premium_destination"]
    assert all(is_premium(c.callee) for c in calls)
    assert 1 <= _peak(calls) <= lab.params["lanes"]
    lab, calls = episodes["arbitrage_high_cost"]
    assert all(c.callee.startswith(tuple(lab.params["prefixes"])) for c in calls)
    assert 1 <= _peak(calls) <= lab.params["lanes"]
    assert all(300 <= c.billsec_s <= 3600 + 1e-6 for c in calls if c.answered)
    lab, calls = episodes["arbitrage_reward"]
    assert len({c.callee for c in calls}) == lab.params["n_destinations"]
    lab, calls = episodes["arbitrage_pumping"]
    assert {c.caller[: len(p)] for c in calls for p in lab.params["origin_prefixes"]
            if c.caller.startswith(p)} <= set(lab.params["origin_prefixes"])
    assert all(c.caller.startswith(tuple(lab.params["origin_prefixes"])) for c in calls)
    lab, calls = episodes["did_concurrency"]
    assert peak_concurrency(calls) == lab.params["n_concurrent"] > 20
    lab, calls = episodes["wangiri"]
    assert len({c.callee for c in calls}) == len(calls)


@pytest.mark.parametrize("pacing", ["regular", "poisson", "batch"])
@pytest.mark.parametrize("destinations", ["sequential", "random"])
def test_autodialer_pacing_and_destinations(pacing, destinations):
    profiles = default_profiles(3, seed=4)
    ep = Episode("autodialer", profiles[0].customer_id, 10, 30,
                 {"attempts_per_min": 12.0, "pacing": pacing, "destinations": destinations, "batch_size": 6})
    sim = simulate(TUESDAY.replace(hour=9), 60, profiles, [ep], seed=4)
    by_id = {r.call_id: r for r in sim}
    calls = sorted((by_id[c] for c in sim.labels[0].call_ids), key=lambda c: c.start)
    assert 0.8 * 360 <= len(calls) <= 360
    assert len({c.callee for c in calls}) == len(calls)
    gaps = [(b.start - a.start).total_seconds() for a, b in itertools.pairwise(calls)]
    if destinations == "sequential":
        numbers = [int(c.callee[1:]) for c in calls]
        assert numbers == list(range(numbers[0], numbers[0] + len(calls)))
    if pacing == "batch":
        assert sum(g < 1.01 for g in gaps) >= 0.7 * len(gaps)  # bursts a fraction of a second apart
    if pacing == "regular":
        assert all(4.5 <= g <= 5.5 for g in gaps)


def test_reward_over_several_numbers_and_clis():
    profiles = default_profiles(6, seed=2)
    cust = max(profiles, key=lambda p: len(p.dids))
    ep = Episode("arbitrage_reward", cust.customer_id, 60, 120,
                 {"n_calls": 200, "n_destinations": 5, "n_clis": 2, "answer_ratio": 0.9, "dest_kind": "mixed"})
    sim = simulate(TUESDAY, 240, profiles, [ep], seed=2)
    by_id = {r.call_id: r for r in sim}
    calls = [by_id[c] for c in sim.labels[0].call_ids]
    assert len({c.callee for c in calls}) == 5 and len({c.caller for c in calls}) == 2
    assert sim.labels[0].scope == {"kind": "account", "value": cust.customer_id}
    assert 0.8 <= asr(calls) < 1.0


def test_premium_national_parallel_lines():
    profiles = default_profiles(3, seed=6)
    cust = profiles[0]
    ep = Episode("premium_destination", cust.customer_id, 5, 30,
                 {"lanes": 6, "families": "national", "answer_ratio": 1.0, "talk_median_s": 600.0,
                  "talk_min_s": 300.0, "talk_max_s": 900.0, "gap_max_s": 2.0, "from_customer_pbx": True})
    sim = simulate(TUESDAY, 60, profiles, [ep], seed=6)
    by_id = {r.call_id: r for r in sim}
    calls = [by_id[c] for c in sim.labels[0].call_ids]
    assert peak_concurrency(calls) == 6
    assert all(phonenumbers.region_code_for_number(phonenumbers.parse(c.callee)) == cust.country for c in calls)
    assert all(is_premium(c.callee) for c in calls)
    assert {c.source_ip for c in calls} == {cust.source_ip}  # a hacked PBX: the customer's own address


def test_varied_profiles_are_wider_and_valid():
    classic = default_profiles(60, seed=4)
    wide = default_profiles(60, seed=4, variety=True)
    assert min(p.calls_per_hour_peak for p in wide) < 8 < 180 < max(p.calls_per_hour_peak for p in wide)
    assert all(3 <= p.calls_per_hour_peak <= 400 and 0.45 <= p.answer_ratio <= 0.75 for p in wide)
    assert [p.customer_id for p in wide] == [p.customer_id for p in classic]
    dids = [d for p in wide for d in p.dids]
    assert len(dids) == len(set(dids))
    assert default_profiles(60, seed=4) == classic  # the classic profiles do not move


def test_traps_hotline_exactly_at_capacity(varied):
    _, records, _, traps = varied
    lab, calls = traps["hotline_at_capacity"]
    assert lab.required_level is None and lab.detector is None and lab.scope["kind"] == "did"
    did = lab.scope["value"]
    assert {c.did for c in calls} == {did}
    assert peak_concurrency([r for r in records if r.did == did and r.duration_s > 0]) == 20
    refused = [c for c in calls if c.disposition is Disposition.BUSY]
    assert refused and all(c.duration_s == 0 and c.hangup_cause == 17 for c in refused)


def test_traps_every_cdr_of_the_duplicate_customer_arrives_twice(varied):
    _, records, _, traps = varied
    lab, _ = traps["duplicate_cdrs"]
    mine = [r for r in records if r.customer_id == lab.customer_id]
    counts = Counter(r.call_id for r in mine)
    assert counts and set(counts.values()) == {2}
    first: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.customer_id == lab.customer_id:
            if r.call_id in first:
                assert records[first[r.call_id]] == r  # the same record, delivered again later
            else:
                first[r.call_id] = i
    others = Counter(r.call_id for r in records if r.customer_id != lab.customer_id)
    assert set(others.values()) == {1}
    # call ids stay the arrival index of the first copies
    ids = [r.call_id for r in records]
    unique = list(dict.fromkeys(ids))
    assert unique == [f"sim-5-{n:08d}" for n in range(1, len(unique) + 1)]


def test_traps_g729_toll_free_countries_emergency_alarm(varied):
    sim, _, _, traps = varied
    profile = {p.customer_id: p for p in sim.profiles}
    lab, calls = traps["g729_low_kbps"]
    assert profile[lab.customer_id].codec == "G729"
    for c in calls:
        assert c.codec == "G729" and c.rtp_lost_packets == 0
        ip_kbps = (c.rtp_in_bytes + 28 * c.rtp_in_packets) * 8 / c.billsec_s / 1000
        assert 23.5 <= ip_kbps <= 31.5
    lab, calls = traps["toll_free_heavy"]
    assert calls and all(number_type(c.callee) == PhoneNumberType.TOLL_FREE for c in calls)
    lab, calls = traps["many_countries"]
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(c.callee)) for c in calls}
    assert len(regions) == 40 and {"LV", "EE"} <= regions
    lab, calls = traps["emergency_calls"]
    from phonenumbers import shortnumberinfo

    country = profile[lab.customer_id].country
    assert calls and all(shortnumberinfo.is_emergency_number(c.callee, country) for c in calls)
    lab, calls = traps["alarm_panels"]
    assert len({c.callee for c in calls}) <= 3 and all(c.answered and c.billsec_s < 40 for c in calls)
    night = sum(c.start.hour < 5 for c in calls)
    assert night > 0.1 * len(calls)  # panels test day and night


def test_traps_call_centre_is_allowlisted_in_the_rules(varied):
    from engine.registry import parse_rules
    from tollguard.simulate import customers_rules, write_rules
    from tollguard.simulate.writers import extension_globs

    sim, _, episodes, traps = varied
    lab, calls = traps["allowed_autodialer"]
    profile = next(p for p in sim.profiles if p.customer_id == lab.customer_id)
    assert profile.allow_detectors == ("autodialer",) and profile.bought_capacity == 60
    section = customers_rules(sim.profiles)["customers"][lab.customer_id]
    assert section["allow"] == {"detectors": ["autodialer"]}
    assert all(d == {"capacity": 60} for d in section["dids"].values())
    buf = io.StringIO()
    write_rules(sim.profiles, buf)
    rules = parse_rules(buf.getvalue())
    assert rules.context(lab.customer_id).params["autodialer"].enabled is False
    assert list(rules.ingest.extensions) == extension_globs(sim.profiles)
    assert set(extension_globs(sim.profiles)) <= {"2??", "3??"}
    # traps sit on customers without an episode, each on its own customer
    trap_customers = [t.customer_id for t, _ in traps.values()]
    assert len(set(trap_customers)) == len(trap_customers)
    assert not set(trap_customers) & {e.customer_id for e, _ in episodes.values()}
    assert len(calls) > 1000
