"""The number typing cache keyed by what decides it, and the fast parses, equal libphonenumber.

``tollguard.numbers`` caches a number's typing by (country code, national number length, the
first ``_cc_reach(cc)`` digits), parses ``+``-digit strings without ``phonenumbers.parse``
where that gives the same PhoneNumber, reads numbers dialled in national or international-prefix
form by a cached parse outcome (``_dialled_fast``), and skips the short-number lookup for digit
strings longer than any short number of the region (``_short_max_len``). These tests compare
them with the uncached, general path on many thousand numbers: the simulator's, every region's
example numbers of every type with digits changed anywhere and lengths off by one or two, their
national, trunk-prefixed and ``00`` / ``011`` / region-IDD forms in 16 home countries, and the
edge cases (short codes, emergency numbers, toll-free, premium, invalid and garbage values).
"""

# ruff: noqa: SLF001  (the caches and the fast parse are private by design; tested directly)
from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType, shortnumberinfo

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
    for fn in (numbers.normalize, numbers.classify, numbers.short_number, numbers._parse, numbers._short_info_lookup):
        fn.cache_clear()
    numbers._TYPED.clear()
    numbers._TYPED_BY_PREFIX.clear()
    numbers._DIALLED.clear()


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
    out: list[tuple[object, ...]] = []
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
        m.setattr(numbers, "_dialled_fast", lambda digits, region: None)  # parse every dialled number
        m.setattr(numbers, "_short_max_len", lambda region: numbers._INFINITE)  # every short-number lookup
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


# ------------------------------------------------------------------ numbers dialled in national / IDD form

#: Home countries for the dialled forms: odd national prefixes (NANP ``1``, RU ``8``, HU ``06``), none
#: kept in the number (IT), national prefix transform rules (AR, BR, JP, SM: parse only), carrier
#: selection and multi-digit IDDs (AU ``0011``, BR, CN), a region that is not its code's main one (CA).
NATIONAL_HOMES = ("GB", "IT", "US", "CA", "AR", "MX", "BR", "RU", "HU", "DE", "FR", "AU", "JP", "CN", "IN", "SM")

NATIONAL_EDGE = (
    "112", "911", "999", "000", "01", "02", "03", "103", "100", "101", "15", "17", "18", "113", "1200", "116117",
    "0000000", "00", "000", "0000000000", "000000000000", "0600000000", "0611", "06112", "8800", "80000000000",
    "88001234567", "1911", "19112", "011", "0011", "00112", "810", "99", "123456789012345678", "0" * 17, "1" * 18,
    "00000", "0044", "00440", "0044000000", "00390", "0039000000000", "011440", "0110", "8100", "010", "0101",
    "7" * 10, "39" * 5, "44" * 5, "1" * 11, "1" * 10, "12" * 6,
)  # fmt: skip


def _dialled_forms(e164: str, home: str) -> list[str]:
    """Ways a PBX in ``home`` might dial ``e164``: national (with and without the trunk prefix, and with other
    regions' trunk prefixes), its own region's national form, ``00`` / ``011`` / ``home``'s IDD + E.164
    digits, the E.164 digits alone, ``home``'s country code + the NSN."""
    digits = e164[1:]
    md = phonenumbers.PhoneMetadata.metadata_for_region(home)
    assert md is not None
    out = ["00" + digits, "011" + digits, digits]
    idd = md.preferred_international_prefix or md.international_prefix
    if idd and idd.isdigit():
        out.append(idd + digits)
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return out
    nsn = phonenumbers.national_significant_number(num)
    national = "".join(c for c in phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL) if c.isdigit())
    out += [nsn, national, "0" + nsn, "8" + nsn, "1" + nsn, "06" + nsn, str(md.country_code) + nsn]
    if md.national_prefix:
        out += [md.national_prefix + nsn, str(md.country_code) + md.national_prefix + nsn]
    return out


def _national_numbers(home: str, step: int) -> list[str]:
    values = list(NATIONAL_EDGE) + [v for v in EDGE_CASES if not v.startswith("+")]
    for e164 in [v for v in NUMBERS if v.startswith("+")][::step]:
        values.extend(_dialled_forms(e164, home))
    return list(dict.fromkeys(values))


@pytest.mark.parametrize("home", NATIONAL_HOMES)
def test_dialled_fast_equals_parse(home: str) -> None:
    """``_dialled_fast`` (where it answers) = ``_dialled_parse`` (phonenumbers.parse) for ~13,000 dialled
    forms per home country; run forwards and backwards so that each cache key is filled by another number."""
    values = _national_numbers(home, 120)
    used = 0
    for order in (values, values[::-1]):
        numbers._DIALLED.clear()
        for value in order:
            fast = numbers._dialled_fast(value, home)
            if fast is not None:
                used += 1
                assert fast == numbers._dialled_parse(value, home), (home, value)
    if numbers._dial_plan(home) is None:  # a national prefix transform rule: parse only
        assert home in ("AR", "BR", "JP", "SM") and used == sum(  # only the international-prefix form is read
            1 for v in values for _ in (0, 1) if numbers._dialled_fast(v, home) is not None)
    else:
        assert used > len(values)  # most of them, both ways
        assert len(numbers._DIALLED) < len(values)  # keys are shared


def test_short_max_len_bounds_the_short_numbers() -> None:
    """No example short number or emergency number of any region is longer than ``_short_max_len``, and
    ``_short_info`` (which skips the lookup above it) = the lookup for digit strings of every length up to
    3 past the bound, built from each region's examples."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        bound = numbers._short_max_len(region)
        md = phonenumbers.PhoneMetadata.short_metadata_for_region(region, None)
        examples = [shortnumberinfo._example_short_number(region)]
        if md is not None:
            for desc in (md.emergency, md.short_code, md.premium_rate, md.toll_free, md.standard_rate):
                if desc is not None and desc.example_number:
                    examples.append(desc.example_number)
        for ex in filter(None, examples):
            assert len(ex) <= bound, (region, ex, bound)
            if bound >= numbers._INFINITE:
                continue
            for length in range(1, bound + 4):
                value = (ex * length)[:length]
                assert numbers._short_info(value, region) == numbers._short_info_lookup(value, region), (region, value)
    # national numbers (10-11 digits) skip the lookup; CN (12-digit short codes), JP and IN still look them up
    assert max(numbers._short_max_len(h) for h in NATIONAL_HOMES if h not in ("CN", "JP", "IN")) <= 8


def _classify_dialled(homes: tuple[str, ...], access: tuple[str, ...], step: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for home in homes:
        values = _national_numbers(home, step)
        if access:
            values += ["9" + v for v in values[::5]]
        for value in values:
            out.append((home, value, numbers.classify(value, home, access), numbers.normalize(value, home, access),
                        numbers.short_number(value, home, access)))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("homes", "access"), [(NATIONAL_HOMES, ()), (("GB", "US", "RU", "HU", "IT", "AU"), ("9",))]
)
def test_dialled_forms_classify_as_the_uncached_path(
    monkeypatch: pytest.MonkeyPatch, homes: tuple[str, ...], access: tuple[str, ...]
) -> None:
    """classify / normalize / short_number of the dialled forms (national, trunk prefix, IDD, short codes,
    emergency numbers, garbage) in the home countries equal the path without any fast parse, prefix cache or
    short-number bound."""
    _clear_caches()
    cached = _classify_dialled(homes, access, 360)
    with monkeypatch.context() as m:
        m.setattr(numbers, "_e164_parts", lambda text: None)
        invalid = (None, None, numbers.NumberType.INVALID, False)
        m.setattr(numbers, "_type_number", lambda numobj: (
            invalid if numobj is None else numbers._type_number_direct(numobj)))
        m.setattr(numbers, "_dialled_fast", lambda digits, region: None)
        m.setattr(numbers, "_short_max_len", lambda region: numbers._INFINITE)
        _clear_caches()
        direct = _classify_dialled(homes, access, 360)
    _clear_caches()
    assert len(cached) == len(direct) > 15_000
    assert [(c, d) for c, d in zip(cached, direct, strict=True) if c != d] == []
    kinds = {(c[2].number_type, c[2].is_emergency) for c in cached}  # type: ignore[attr-defined]
    assert {(numbers.NumberType.EMERGENCY, True), (numbers.NumberType.SHORT_CODE, False),
            (numbers.NumberType.FIXED_LINE, False), (numbers.NumberType.MOBILE, False),
            (numbers.NumberType.UNKNOWN, False), (numbers.NumberType.INVALID, False)} <= kinds  # fmt: skip
