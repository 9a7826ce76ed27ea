"""Never evidence (issue 9, deliverable 5): emergency and toll-free calls count in no detector.

Emergency numbers (libphonenumber's for the customer's country: 112 / 113 / 115 / 118 in Italy,
999 / 112 in the United Kingdom, 911 in the United States) and toll-free numbers (national and the
international +800 freephone) are never evidence as the destination of an outbound call (an
inbound caller id can be spoofed, so it is no reason to ignore a call): no detector counts them (dialer and Wangiri
counts, concurrency, media, minutes, money and the anomaly model's features included), and no
suspension's scope names or covers one. One suite decides it for every detector of
:data:`engine.registry.ALL_DETECTORS`, driven as the engine drives them (CDRs in end order,
``advance`` to the watermark after each, ``advance(inf)`` at the end):

- a **flood** of such calls mixed into an otherwise quiet day gives exactly the quiet day's
  decisions (none): 710 calls from the customer's numbers, 30 at once for an hour, one-ring
  calls, sequential numbers dialled every 2 s, constant-length answered calls, at night, with
  media far below the codec's need and lossy, on a customer that declared a small link;
- the same flood mixed into each detector's fraud day (:data:`test_detector_checks.CASES`) gives
  the same decisions as the day alone (apart from ``occurred_at_s``, the newest CDR end a
  detector had seen, which the flood's calls legitimately move), and no scope names an
  emergency or toll-free number or is a destination prefix covering one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from test_detector_checks import CASES, CUSTOMER, DAY, SEED

from detectors.base import Decision, Detector
from engine.registry import ALL_DETECTORS, Rules
from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.context import CustomerContext
from tollguard.events import ScopeKind
from tollguard.numbers import NumberType, classify
from tollguard.simulate import customers_rules, default_profiles, scenario, simulate
from tollguard.testing import BASE_TIME, make_cdr

#: Emergency numbers per country (each checked against libphonenumber below).
EMERGENCY = {"IT": ("112", "113", "115", "118"), "GB": ("999", "112"), "US": ("911",)}
#: The customer's DIDs per country (national geographic numbers).
DIDS = {"IT": ("+390298765400", "+390298765401"), "GB": ("+442079460100", "+442079460101"),
        "US": ("+12025550100", "+12025550101")}  # fmt: skip
#: An ordinary national number per country (the quiet day's calls).
NATIONAL = {"IT": "+390612345678", "GB": "+441614960000", "US": "+13125550143"}
LINES = 30  # simultaneous calls of the flood's long part (above a DID's 20, above a 512 kbit/s link's 8)
T0 = BASE_TIME.timestamp()


def toll_free(country: str, n: int) -> list[str]:
    """``n`` distinct toll-free E.164 numbers of ``country`` (consecutive, from libphonenumber's example)."""
    example = phonenumbers.example_number_for_type(country, PhoneNumberType.TOLL_FREE)
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    out = []
    base = int(e164[-4:])
    for k in range(10_000):
        number = f"{e164[:-4]}{(base + k) % 10_000:04d}"
        if classify(number, country).number_type is NumberType.TOLL_FREE:
            out.append(number)
            if len(out) == n:
                return out
    raise AssertionError(f"not enough toll-free numbers for {country}")


def never_numbers(country: str) -> list[str]:
    """The flood's destinations: emergency numbers as dialled, toll-free numbers, international freephone."""
    return [*EMERGENCY[country], *toll_free(country, 3), "+80012345678"]


def _call(i: int, at_s: float, *, customer: str, direction: Direction, caller: str, callee: str, did: str,
          talk_s: float, ring_s: float = 5.0, answered: bool = True, bad_media: bool = False) -> CallDetailRecord:
    """One call starting at ``at_s`` (epoch s); answered calls talk ``talk_s`` after ``ring_s`` of ringing."""
    start = at_s - T0
    fields: dict[str, Any] = dict(call_id=f"never-{i:05d}", customer_id=customer, direction=direction,
                                  caller=caller, callee=callee, did=did, start_s=start)
    if answered:
        fields.update(answer_s=start + ring_s, end_s=start + ring_s + talk_s)
    else:
        fields.update(end_s=start + ring_s, disposition=Disposition.NO_ANSWER, hangup_cause=19)
    if answered and bad_media:  # G.711 at ~32 kbit/s per direction (it needs ~80), 10 % of packets lost
        packets = int(talk_s * 50 * 0.9)
        fields.update(codec="PCMA", rtp_in_bytes=packets * 60.0, rtp_out_bytes=packets * 60.0,
                      rtp_in_packets=packets, rtp_out_packets=packets, rtp_lost_packets=int(packets / 9), mos=2.1)
    return make_cdr(**fields)


def flood(country: str, customer: str, dids: tuple[str, ...], night_s: float) -> list[CallDetailRecord]:
    """Hundreds of emergency and toll-free calls from ``night_s`` (epoch s, a local night), every shape of evidence."""
    numbers = never_numbers(country)
    free = toll_free(country, 400)
    emergency = EMERGENCY[country]
    calls: list[CallDetailRecord] = []

    def add(at_s: float, callee: str, talk_s: float, **kw: Any) -> None:
        kw.setdefault("direction", Direction.OUTBOUND)
        did = kw.pop("did", dids[0])
        caller = kw.pop("caller", did)
        calls.append(_call(len(calls), at_s, customer=customer, caller=caller, callee=callee, did=did,
                           talk_s=talk_s, **kw))

    t = night_s
    for lane in range(LINES):  # 30 lines at once for an hour, twice: emergency, then toll-free, bad media
        add(t + lane, numbers[lane % len(numbers)], 3600, bad_media=True)
        add(t + 4000 + lane, free[lane], 3600, did=dids[lane % len(dids)], bad_media=True)
    t += 8000
    for k in range(300):  # a dialer's signs: sequential toll-free numbers every 2 s, mostly unanswered, short
        add(t + 2 * k, free[k], 8, answered=k % 10 == 0)
    t += 700
    for k in range(200):  # Wangiri's: one-ring calls to toll-free and emergency numbers, one a second
        add(t + k, (free[k] if k % 2 else emergency[k % len(emergency)]), 0, ring_s=1.5, answered=False)
    t += 300
    for k in range(150):  # a reward scheme's: answered 61 s calls to two toll-free numbers, 20 s apart
        add(t + 20 * k, free[k % 2], 61)
    return calls


def quiet_day(country: str, customer: str, dids: tuple[str, ...], day_s: float) -> list[CallDetailRecord]:
    """A small office's ordinary day: 12 national calls out and 6 in, in business hours, none overlapping."""
    calls = []
    for k in range(18):
        at = day_s + 8 * 3600 + k * 1800
        if k % 3 == 2:
            calls.append(_call(90_000 + k, at, customer=customer, direction=Direction.INBOUND,
                               caller=NATIONAL[country], callee=dids[0], did=dids[0], talk_s=120))
        else:
            calls.append(_call(90_000 + k, at, customer=customer, direction=Direction.OUTBOUND,
                               caller=dids[k % 2], callee=NATIONAL[country], did=dids[k % 2], talk_s=150))
    return calls


# ------------------------------------------------------------------------------------ driving


def drive(make: Callable[[], Detector], ctx: CustomerContext, cdrs: Iterable[CallDetailRecord],
          lateness_s: float) -> list[Decision]:
    """The engine's order: CDRs by end, ``advance`` to the watermark after each, ``advance(inf)`` at the end."""
    det = make()
    state = det.initial_state()
    out: list[Decision] = []
    for cdr in sorted(cdrs, key=lambda c: (c.end, c.call_id)):
        out += det.update(state, cdr, ctx)
        out += det.advance(state, cdr.end.timestamp() - lateness_s, ctx)
    return out + det.advance(state, math.inf, ctx)


def maker(cls: type[Detector], request: pytest.FixtureRequest) -> Callable[[], Detector]:
    if getattr(cls, "uses_model", False):
        model = request.getfixturevalue("small_anomaly_model")
        return lambda: cls(model)  # type: ignore[call-arg]
    return cls


def summary(d: Decision) -> tuple[Any, ...]:
    """A decision without ``occurred_at_s`` (the newest CDR end a detector saw: the flood moves it)."""
    return (d.type, d.level, d.check, d.scope_kind, d.scope_value, d.episode, d.clause, d.reason, d.evidence,
            d.extra)


def assert_scopes_clear(decisions: list[Decision], numbers: list[str]) -> None:
    """No scope names an emergency or toll-free number; no destination prefix covers one."""
    for d in decisions:
        assert d.scope_value not in numbers, d
        info = classify(d.scope_value, "IT") if d.scope_kind is not ScopeKind.ACCOUNT else None
        assert info is None or not (info.is_emergency or info.number_type is NumberType.TOLL_FREE), d
        if d.scope_kind is ScopeKind.DESTINATION_PREFIX:
            assert not any(n.startswith(d.scope_value) for n in numbers), d


def test_the_flood_is_what_it_claims():
    for country in EMERGENCY:
        for number in EMERGENCY[country]:
            assert phonenumbers.is_emergency_number(number, country) and classify(number, country).is_emergency
        numbers = toll_free(country, 400)
        assert len(set(numbers)) == 400
    calls = flood("IT", "c1", DIDS["IT"], T0)
    assert len(calls) == 2 * LINES + 300 + 200 + 150 == 710


# ------------------------------------------------------------------------------------ the checks

@pytest.mark.parametrize("country", ["IT", "GB", "US"])
@pytest.mark.parametrize("cls", ALL_DETECTORS, ids=lambda cls: cls.name)
def test_a_flood_of_emergency_and_toll_free_calls_on_a_quiet_day_decides_nothing(
    cls: type[Detector], country: str, request: pytest.FixtureRequest
):
    customer = f"quiet-{country.lower()}"
    rules = Rules(version="never", customers={customer: {"country": country, "link_kbps": 512,
                                                          "dids": {d: {} for d in DIDS[country]}}})
    ctx, lateness = rules.context(customer), rules.engine.allowed_lateness_s
    day_s = datetime(2025, 3, 11, tzinfo=UTC).timestamp()  # a Tuesday
    night_s = day_s + 86_400 + 3600  # the next night, 01:00 UTC
    quiet = quiet_day(country, customer, DIDS[country], day_s) + quiet_day(country, customer, DIDS[country],
                                                                           day_s + 2 * 86_400)
    make = maker(cls, request)
    assert drive(make, ctx, quiet, lateness) == []
    flooded = drive(make, ctx, quiet + flood(country, customer, DIDS[country], night_s), lateness)
    assert flooded == [], [(str(d.type), d.check, str(d.scope_kind), d.scope_value, d.reason) for d in flooded]


@pytest.mark.parametrize("cls", ALL_DETECTORS, ids=lambda cls: cls.name)
def test_a_flood_mixed_into_a_fraud_day_changes_no_decision_and_no_scope_covers_it(
    cls: type[Detector], request: pytest.FixtureRequest
):
    if not cls.decides:
        pytest.skip(f"{cls.name} is a monitor: it never decides")
    case = CASES[cls.name]
    profiles = default_profiles(1, SEED)
    episodes = [ep for kind in case.episodes for ep in scenario(kind, profiles, 1440)]
    sections = customers_rules(profiles)
    sections["customers"][CUSTOMER].update(case.customer)
    rules = Rules(version="never", **sections)
    ctx, lateness = rules.context(CUSTOMER), rules.engine.allowed_lateness_s
    day = list(simulate(DAY, 1440, profiles, episodes, SEED))
    dids = tuple(profiles[0].dids)
    extra = flood(profiles[0].country, CUSTOMER, dids, (DAY + timedelta(hours=1)).timestamp())
    make = maker(cls, request)
    alone = drive(make, ctx, day, lateness)
    mixed = drive(make, ctx, day + extra, lateness)
    assert alone, "the fraud day must give decisions"
    assert [summary(d) for d in mixed] == [summary(d) for d in alone]
    assert_scopes_clear(mixed, never_numbers(profiles[0].country) + toll_free(profiles[0].country, 400))
