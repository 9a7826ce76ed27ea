"""The number typing cache keyed by what decides it, and the E.164 fast parse, equal libphonenumber.

``tollguard.numbers`` caches a number's typing by (country code, national number length, the
first ``_cc_reach(cc)`` digits) and parses ``+``-digit strings without ``phonenumbers.parse``
where that gives the same PhoneNumber. These tests compare both with the uncached, general path
on many thousand numbers: the simulator's, every region's example numbers of every type with
digits changed anywhere and lengths off by one or two, and the edge cases (short codes,
emergency numbers, toll-free, premium, invalid and garbage values).
"""

# ruff: noqa: SLF001  (the caches and the fast parse are private by design; tested directly)
from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from tollguard import numbers
from tollguard.simulate import pools

HOMES = ("IT", "GB", "US", "DE", "RU", "AU")

EDGE_CASES = (
    "112", "113", "118", "911", "999", "000", "15", "17", "4242", "1200", "116117", "1002", "*97", "#31#",
    "s", "", "abc", "sip:1002@pbx", "tel:+39-06-1234-5678", "+", "+0", "+1", "+39", "+3906", "+999123456",
    "+80012345678", "+800123", "+8001234567890123", "+8823123456789", "+881612345678", "+979123456789",
    "+39800123456", "+39899123456", "+39199123456", "+442079460000", "+449012345678", "+448001234567",
    "+12015550123", "+18005550123", "+19005550123", "+15555550123", "+1201555012", "+120155501234",
    "+4930123456", "+49301234567890123", "+490301234567", "+440201234567", "+3900612345678", "+7800123456",
    "+78001234567", "+61291234567", "+610291234567", "+5511912345678", "+55011912345678", "+54911234567890",
    "+5491123456789", "+2399901234", "+21671234567", "+37120000000", "+37250012345", "+686123456",
    "+00390612345678", "00390612345678", "0612345678", "3331234567", "020 7946 0000", "8 495 123 45 67",
    "011 44 20 7946 0000", "0044 90 1234 5678", "9 0044 20 7946 0000", "+٣٩٠٦١٢٣٤٥٦٧", "+39 06 1234 5678",
    "+1234567890123456", "+12345678901234567890123",
)  # fmt: skip


def _mutations(e164: str, rng: random.Random, changes: int = 6) -> Iterator[str]:
    """``e164``, ``changes`` times a digit changed at a random position (prefix included), and lengths off by 1-2."""
    yield e164
    digits = e164[1:]
    for _ in range(changes):
        pos = rng.randrange(1, len(digits))
        yield "+" + digits[:pos] + str(rng.randrange(10)) + digits[pos + 1 :]
    for _ in range(3):
        tail = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(2, 8)))
        yield "+" + digits[: len(digits) - len(tail)] + tail
    yield "+" + digits[:-1]
    yield "+" + digits[:-2]
    yield e164 + str(rng.randrange(10))
    yield e164 + str(rng.randrange(100)).zfill(2)


def _diverse_numbers() -> list[str]:
    rng = random.Random(11)
    out: list[str] = []
    # every region's and non-geographic code's example number of every type, mutated
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for ntype in range(12):  # PhoneNumberType values 0-11
            ex = phonenumbers.example_number_for_type(region, ntype)
            if ex is not None:
                examples.append(phonenumbers.format_number(ex, PhoneNumberFormat.E164))
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        ex = phonenumbers.example_number_for_non_geo_entity(cc)
        if ex is not None:
            examples.append(phonenumbers.format_number(ex, PhoneNumberFormat.E164))
    for e164 in examples:
        out.extend(_mutations(e164, rng))
    # the simulator's pools (its real destinations and callers), with their national forms
    for (region, kind) in sorted(pools._POOL_SPECS):
        for i, num in enumerate(pools._pool(region, kind)):
            out.extend((num.e164, num.national, "00" + num.e164[1:]))
            if i % 2 == 0:
                out.extend(_mutations(num.e164, rng, changes=1))
    return out


NUMBERS = _diverse_numbers()


def _clear_caches() -> None:
    for fn in (numbers.normalize, numbers.classify, numbers.short_number, numbers._parse, numbers._short_info):
        fn.cache_clear()
    numbers._TYPED.clear()
    numbers._TYPED_BY_PREFIX.clear()


def test_the_number_set_is_large_and_diverse() -> None:
    assert len(NUMBERS) > 100_000
    ccs = set()
    for value in NUMBERS:
        try:
            ccs.add(phonenumbers.parse(value if value.startswith("+") else "+" + value.lstrip("0")).country_code)
        except phonenumbers.NumberParseException:
            pass
    assert len(ccs) > 200


def test_e164_fast_parse_equals_phonenumbers_parse() -> None:
    fast_used = 0
    for value in (*NUMBERS, *EDGE_CASES):
        if not value.startswith("+"):
            continue
        fast = numbers._parse_e164(value)
        if fast is None:
            continue
        fast_used += 1
        for region in (None, "IT", "US"):
            assert fast == phonenumbers.parse(value, region, keep_raw_input=True), (value, region)
    assert fast_used > 50_000  # the fast path is the common one


@pytest.mark.parametrize("warm", [False, True])
def test_typing_by_prefix_equals_direct_typing(warm: bool) -> None:
    """Every number: the prefix-keyed typing (cold, then with every key already cached) = libphonenumber."""
    _clear_caches()
    parsed = []
    for value in (*NUMBERS, *EDGE_CASES):
        try:
            parsed.append(phonenumbers.parse(value, "IT", keep_raw_input=True))
        except phonenumbers.NumberParseException:
            continue
    if warm:
        for numobj in parsed:
            numbers._type_number(numobj)
    hits = 0
    for numobj in parsed:
        before = len(numbers._TYPED_BY_PREFIX)
        assert numbers._type_number(numobj) == numbers._type_number_direct(numobj), numobj
        hits += len(numbers._TYPED_BY_PREFIX) == before
    assert hits > len(parsed) // 4  # shared keys really are shared


def test_typing_covers_every_type() -> None:
    seen = set()
    for value in NUMBERS:
        if value.startswith("+"):
            seen.add(numbers._typing(value)[2])
    assert {numbers.NumberType.PREMIUM_RATE, numbers.NumberType.TOLL_FREE, numbers.NumberType.MOBILE,
            numbers.NumberType.FIXED_LINE, numbers.NumberType.UNKNOWN, numbers.NumberType.INVALID,
            numbers.NumberType.SHARED_COST, numbers.NumberType.VOIP} <= seen  # fmt: skip


def _classify_all(access: tuple[str, ...]) -> list[tuple[object, ...]]:
    out = []
    step = 6 if access else 3
    for home in HOMES:
        for value in (*NUMBERS[::step], *EDGE_CASES):
            out.append((home, value, numbers.classify(value, home, access), numbers.normalize(value, home, access),
                        numbers.short_number(value, home, access)))  # fmt: skip
    return out


@pytest.mark.parametrize("access", [(), ("9",)])
def test_classify_and_normalize_equal_the_uncached_path(
    monkeypatch: pytest.MonkeyPatch, access: tuple[str, ...]
) -> None:
    """classify / normalize / short_number of the numbers in 6 home countries (every 3rd number; with an
    access code every 6th), with the caches and the fast parse, equal the same functions with
    libphonenumber's parse and uncached typing."""
    _clear_caches()
    cached = _classify_all(access)
    with monkeypatch.context() as m:
        m.setattr(numbers, "_e164_parts", lambda text: None)  # no fast parse, no E.164 shortcut
        invalid = (None, None, numbers.NumberType.INVALID, False)
        m.setattr(numbers, "_type_number", lambda numobj: (
            invalid if numobj is None else numbers._type_number_direct(numobj)))
        _clear_caches()
        direct = _classify_all(access)
    _clear_caches()
    assert len(cached) == len(direct)
    diffs = [(c, d) for c, d in zip(cached, direct, strict=True) if c != d]
    assert diffs == []


def test_reach_of_patterns() -> None:
    reach = numbers._pattern_reach
    assert reach(r"\d{8}") == 0
    assert reach(r"(?:2[1-9]|3\d)\d{6}") == 2
    assert reach(r"[2-9]\d{2}[2-9]\d{6}") == 4
    assert reach(r"\d{1,3}5\d{4}") == 4  # a variable-length digit run before a specific digit
    assert reach(r"1(?:2|34)\d{3}5") == 7
    assert reach(r"\d+5") >= numbers._INFINITE
    assert reach(r"(?=1)\d{5}") >= numbers._INFINITE  # look-ahead: not analysed
    assert numbers._cc_reach(1) < 10 and numbers._cc_reach(44) < 10


def test_the_benchmark_example_types() -> None:
    """Spot checks through the cache: the classify examples of the module."""
    _clear_caches()
    info = numbers.classify("0044 90 1234 5678", "IT")
    assert (info.e164, info.region, info.number_type) == ("+449012345678", "GB", numbers.NumberType.PREMIUM_RATE)
    assert numbers.classify("+449012345679", "IT").number_type is numbers.NumberType.PREMIUM_RATE
    assert numbers.classify("112", "DE").is_emergency
    assert PhoneNumberType.PREMIUM_RATE == 4
