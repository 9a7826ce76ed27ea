"""Tests of tollguard.numbers: E.164 normalisation and number typing (libphonenumber 9.0.43 metadata)."""

from __future__ import annotations

import dataclasses

import pytest

from tollguard.numbers import (
    CACHE_SIZE,
    NumberInfo,
    NumberType,
    PrefixIndex,
    classify,
    compile_prefixes,
    matches_prefix,
    normalize,
    short_number,
)

# --------------------------------------------------------------------------- normalize

NORMALIZE_CASES = [
    # already E.164 (any home country)
    ("+39061234567", "IT", "+39061234567"),
    ("+442079460000", "IT", "+442079460000"),
    ("+12015550123", "DE", "+12015550123"),
    ("+8823123456789", "US", "+8823123456789"),
    ("+881612345678", "GB", "+881612345678"),
    ("+979123456789", "FR", "+979123456789"),
    ("+80012345678", "IT", "+80012345678"),
    # 00 international prefix
    ("0039 06 1234 5678", "IT", "+390612345678"),
    ("0044 20 7946 0000", "IT", "+442079460000"),
    ("00442079460000", "DE", "+442079460000"),
    ("0033 1 23 45 67 89", "GB", "+33123456789"),
    ("00 1 201 555 0123", "FR", "+12015550123"),
    # 00 also where the region's IDD is different (NANP uses 011)
    ("0044 20 7946 0000", "US", "+442079460000"),
    # 011 from NANP
    ("011 44 20 7946 0000", "US", "+442079460000"),
    ("01139061234567", "CA", "+39061234567"),
    # 810 / 8~10 from RU
    ("810 44 20 7946 0000", "RU", "+442079460000"),
    ("8~10 44 20 7946 0000", "RU", "+442079460000"),
    # 011 in IT is Turin, not an international prefix
    ("011 1234567", "IT", "+390111234567"),
    # national with trunk prefix
    ("06 1234 5678", "IT", "+390612345678"),
    ("0612345678", "IT", "+390612345678"),
    ("020 7946 0000", "GB", "+442079460000"),
    ("07400 123456", "GB", "+447400123456"),
    ("030 1234567", "DE", "+49301234567"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("(201) 555-0123", "US", "+12015550123"),
    ("1-201-555-0123", "US", "+12015550123"),
    ("2015550123", "US", "+12015550123"),
    ("8 495 123 45 67", "RU", "+74951234567"),
    ("8 555 000 0001", "RU", "+75550000001"),
    ("01 23 45 67 89", "FR", "+33123456789"),
    # DE 0900 with a length outside the metadata ranges, written with its trunk prefix
    ("0900 12345678", "DE", "+4990012345678"),
    # separators
    ("+39 06 1234 5678", "IT", "+390612345678"),
    ("+39-06-1234-5678", "IT", "+390612345678"),
    ("+39.06.1234.5678", "IT", "+390612345678"),
    ("+44 (0)20 7946 0000", "GB", "+442079460000"),
    ("201.555.0123", "US", "+12015550123"),
    ("(030) 123 45 67", "DE", "+49301234567"),
    ("  +390612345678  ", "IT", "+390612345678"),
    # lower-case country
    ("06 1234 5678", "it", "+390612345678"),
    # tel: and sip: URIs
    ("tel:+39-06-1234-5678", "IT", "+390612345678"),
    ("tel:+442079460000;phone-context=example.com", "IT", "+442079460000"),
    ("sip:+390612345678@trunk.example.net;user=phone", "IT", "+390612345678"),
    ("sip:0612345678@pbx.example.net", "IT", "+390612345678"),
    ("sips:00442079460000@pbx.example.net:5061", "IT", "+442079460000"),
    ("<sip:0612345678@pbx.local>", "IT", "+390612345678"),
    ('"Mario Rossi" <sip:+390612345678@pbx.local>', "IT", "+390612345678"),
    ("sip:%2B442079460000@host", "IT", "+442079460000"),
    ("SIP:+442079460000@host", "GB", "+442079460000"),
    ("0612345678@pbx.local", "IT", "+390612345678"),
    # extensions and feature codes
    ("1002", "IT", None),
    ("1002", "DE", None),
    ("1002", "US", None),
    ("201", "GB", None),
    ("*97", "US", None),
    ("*72#", "IT", None),
    ("#31#", "DE", None),
    ("sip:1002@pbx.local", "IT", None),
    # short numbers are never E.164
    ("112", "IT", None),
    ("112", "DE", None),
    ("911", "US", None),
    ("999", "GB", None),
    ("113", "IT", None),
    ("118", "IT", None),
    ("4242", "BE", None),
    ("12", "SN", None),
    # empty and garbage
    ("", "IT", None),
    ("   ", "IT", None),
    ("s", "IT", None),
    ("&", "IT", None),
    ("anonymous", "IT", None),
    ("sip:alice@example.com", "IT", None),
    ("sip:anonymous@anonymous.invalid", "US", None),
    ("+", "IT", None),
    ("++390612345678", "IT", None),
    ("+39 06 1234 5678 x", "IT", None),
    ("1-800-FLOWERS", "US", None),
    ("06 1234 5678 ext 12", "IT", None),
    # local numbers without the required trunk prefix cannot be placed
    ("301234567", "DE", None),
    ("2079460000", "GB", None),
    ("5551234", "US", None),
    # international form that is too short for its country (libphonenumber TOO_SHORT)
    ("+97912345678", "IT", None),
    ("0097912345678", "IT", None),
    ("+391002", "IT", None),
    # unassigned country code, over 15 digits
    ("+999123456789", "IT", None),
    ("+3906123456789012345", "IT", None),
]


@pytest.mark.parametrize(("raw", "country", "expected"), NORMALIZE_CASES)
def test_normalize(raw: str, country: str, expected: str | None) -> None:
    assert normalize(raw, country) == expected


ACCESS_CODE_CASES = [
    # (raw, country, access codes, expected)
    ("9 0044 20 7946 0000", "GB", ("9",), "+442079460000"),
    ("9 020 7946 0000", "GB", ("9",), "+442079460000"),
    ("9 011 44 20 7946 0000", "US", ("9",), "+442079460000"),
    ("9 1 201 555 0123", "US", ("9",), "+12015550123"),
    ("0 0044 20 7946 0000", "DE", ("0",), "+442079460000"),
    ("0 030 1234567", "DE", ("0",), "+49301234567"),
    ("0 0049 30 1234567", "DE", ("0",), "+49301234567"),
    ("0 06 1234 5678", "IT", ("0",), "+390612345678"),
    ("0 06 1234 5678", "IT", ("0", "00"), "+390612345678"),
    # ... but without the access code "00612345678" is the unallocated +61 2345678 (AU)
    ("0 06 1234 5678", "IT", (), "+612345678"),
    # the longest matching code is stripped first
    ("81 0044 20 7946 0000", "GB", ("8", "81"), "+442079460000"),
    # the whole value wins when it normalises by itself
    ("0044 20 7946 0000", "GB", ("0",), "+442079460000"),
    ("020 7946 0000", "GB", ("0",), "+442079460000"),
    ("+442079460000", "GB", ("9",), "+442079460000"),
    # nothing left that normalises
    ("9 1002", "GB", ("9",), None),
    ("9", "GB", ("9",), None),
    ("9 112", "IT", ("9",), None),
    ("1002", "IT", ("9",), None),
]


@pytest.mark.parametrize(("raw", "country", "codes", "expected"), ACCESS_CODE_CASES)
def test_normalize_access_code(raw: str, country: str, codes: tuple[str, ...], expected: str | None) -> None:
    assert normalize(raw, country, codes) == expected


def test_normalize_without_access_code_does_not_strip() -> None:
    # "0 030 1234567" read without an access code: 00 is DE's international prefix -> +30 1234567,
    # too short for Greece, hence not a public number
    assert normalize("0 030 1234567", "DE") is None
    assert normalize("9 0044 20 7946 0000", "GB") is None


def test_normalize_non_string_is_none() -> None:
    assert normalize(None, "IT") is None  # type: ignore[arg-type]
    assert normalize(390612345678, "IT") is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- number types

E164_TYPE_CASES = [
    # (number, expected type, region, country code)
    # premium rate
    ("+449012345678", NumberType.PREMIUM_RATE, "GB", 44),
    ("+448712345678", NumberType.PREMIUM_RATE, "GB", 44),
    ("+448443334444", NumberType.PREMIUM_RATE, "GB", 44),
    ("+39899123456", NumberType.PREMIUM_RATE, "IT", 39),
    ("+19005551234", NumberType.PREMIUM_RATE, "US", 1),
    ("+19002345678", NumberType.PREMIUM_RATE, "US", 1),
    ("+979123456789", NumberType.PREMIUM_RATE, "001", 979),
    ("+979312345678", NumberType.PREMIUM_RATE, "001", 979),
    ("+499001234567", NumberType.PREMIUM_RATE, "DE", 49),
    ("+33891123456", NumberType.PREMIUM_RATE, "FR", 33),
    ("+33899123456", NumberType.PREMIUM_RATE, "FR", 33),
    ("+34803123456", NumberType.PREMIUM_RATE, "ES", 34),
    ("+3531599111111", NumberType.PREMIUM_RATE, "IE", 353),
    ("+41900123456", NumberType.PREMIUM_RATE, "CH", 41),
    # shared cost
    ("+4918051234567", NumberType.SHARED_COST, "DE", 49),
    ("+4918012345", NumberType.SHARED_COST, "DE", 49),
    ("+33810123456", NumberType.SHARED_COST, "FR", 33),
    ("+34901123456", NumberType.SHARED_COST, "ES", 34),
    ("+39848123456", NumberType.SHARED_COST, "IT", 39),
    ("+43810123456", NumberType.SHARED_COST, "AT", 43),
    # personal number
    ("+447012345678", NumberType.PERSONAL_NUMBER, "GB", 44),
    ("+4970012345678", NumberType.PERSONAL_NUMBER, "DE", 49),
    ("+391781234567", NumberType.PERSONAL_NUMBER, "IT", 39),
    ("+41878123456", NumberType.PERSONAL_NUMBER, "CH", 41),
    ("+15002345678", NumberType.PERSONAL_NUMBER, "US", 1),
    # toll free
    ("+18665551234", NumberType.TOLL_FREE, "US", 1),
    ("+80012345678", NumberType.TOLL_FREE, "001", 800),
    ("+39800123456", NumberType.TOLL_FREE, "IT", 39),
    ("+39803123", NumberType.TOLL_FREE, "IT", 39),
    # UAN
    ("+445512345678", NumberType.UAN, "GB", 44),
    ("+33806123456", NumberType.UAN, "FR", 33),
    ("+4918500123456", NumberType.UAN, "DE", 49),
    ("+3114020", NumberType.UAN, "NL", 31),
    ("+88812345678901", NumberType.UAN, "001", 888),
    # VoIP
    ("+8823123456789", NumberType.VOIP, "001", 882),
    ("+88216123456789", NumberType.VOIP, "001", 882),
    ("+883140000000", NumberType.VOIP, "001", 883),
    ("+445612345678", NumberType.VOIP, "GB", 44),
    ("+395512345678", NumberType.VOIP, "IT", 39),
    # mobile (satellite included)
    ("+881612345678", NumberType.MOBILE, "001", 881),
    ("+881812345678", NumberType.MOBILE, "001", 881),
    ("+870773111632", NumberType.MOBILE, "001", 870),
    ("+447400123456", NumberType.MOBILE, "GB", 44),
    ("+447624123456", NumberType.MOBILE, "IM", 44),
    ("+393123456789", NumberType.MOBILE, "IT", 39),
    ("+4915123456789", NumberType.MOBILE, "DE", 49),
    ("+886900003987", NumberType.MOBILE, "TW", 886),
    # fixed line / fixed line or mobile
    ("+390612345678", NumberType.FIXED_LINE, "IT", 39),
    ("+442079460000", NumberType.FIXED_LINE, "GB", 44),
    ("+49301234567", NumberType.FIXED_LINE, "DE", 49),
    ("+35316123456", NumberType.FIXED_LINE, "IE", 353),
    ("+12015550123", NumberType.FIXED_LINE_OR_MOBILE, "US", 1),
    ("+14165550123", NumberType.FIXED_LINE_OR_MOBILE, "CA", 1),
    # pager, voicemail
    ("+447640123456", NumberType.PAGER, "GB", 44),
    ("+88234851234567", NumberType.VOICEMAIL, "001", 882),
    ("+3933101234501", NumberType.VOICEMAIL, "IT", 39),
    # possible length, but in no range of the metadata: libphonenumber finds them invalid, so no
    # region (libphonenumber itself names DE, TW, NL for a lone country code: not a guess we make)
    ("+4990012345678", NumberType.UNKNOWN, None, 49),
    ("+88210123456", NumberType.UNKNOWN, None, 882),
    ("+3161234567", NumberType.UNKNOWN, None, 31),
    ("+88613123456", NumberType.UNKNOWN, None, 886),
    ("+75550000001", NumberType.UNKNOWN, None, 7),
]


@pytest.mark.parametrize(("e164", "expected", "region", "cc"), E164_TYPE_CASES)
def test_classify_e164_type(e164: str, expected: NumberType, region: str | None, cc: int) -> None:
    info = classify(e164, "IT")
    assert info.number_type is expected
    assert info.e164 == e164
    assert info.region == region
    assert info.country_code == cc
    assert info.is_valid is (expected is not NumberType.UNKNOWN)
    assert info.is_emergency is False
    assert info.short_cost is None


INVALID_WITH_COUNTRY_CASES = [
    # (raw, home, e164 as written, country code, international): a number libphonenumber finds
    # invalid (wrong length or in no range) whose country code is known
    ("+97912345678", "IT", "+97912345678", 979, True),
    ("0097912345678", "IT", "+97912345678", 979, True),
    ("011 979 12345678", "US", "+97912345678", 979, True),
    ("+8081234567", "IT", "+8081234567", 808, True),
    ("+4477007000", "IT", "+4477007000", 44, True),
    ("+4477007000", "GB", "+4477007000", 44, False),
    ("+391002", "IT", "+391002", 39, False),
    ("0 030 1234567", "DE", "+301234567", 30, True),
    # national form: no e164; the country code is the home one
    ("301234567", "DE", None, 49, False),
    ("2079460000", "GB", None, 44, False),
    ("5551234", "US", None, 1, False),
    ("1234567890123456", "IT", None, 39, False),
]


@pytest.mark.parametrize(("raw", "home", "e164", "cc", "international"), INVALID_WITH_COUNTRY_CASES)
def test_classify_invalid_keeps_country(raw: str, home: str, e164: str | None, cc: int, international: bool) -> None:
    info = classify(raw, home)
    assert info.number_type is NumberType.UNKNOWN
    assert info.is_valid is False
    assert info.e164 == e164
    assert info.region is None  # never guessed from the country code
    assert info.country_code == cc
    assert info.international is international
    assert normalize(raw, home) is None


# (number, home) libphonenumber finds invalid, whichever form: each one is typed UNKNOWN with no region
INVALID_NUMBER_CASES = [
    ("+4990012345678", "IT"),  # +49: one region, so libphonenumber names DE even for an invalid number
    ("+88613123456", "IT"),  # +886 (TW) likewise
    ("+3161234567", "NL"),  # one digit short of a Dutch mobile, dialled at home
    ("+4477007000", "GB"),  # +44 shared with GG, IM, JE: formerly guessed GB
    ("+12003456789", "US"),  # +1 area code 200 is not assigned: formerly guessed US
    ("+75550000001", "RU"),  # +7 shared with KZ: formerly guessed RU
    ("8 555 000 0001", "RU"),  # national form with the trunk prefix: normalised, still invalid
    ("+97912345678", "IT"),  # +979 of the wrong length: e164 kept for prefix rules
]


@pytest.mark.parametrize(("raw", "home"), INVALID_NUMBER_CASES)
def test_invalid_number_is_unknown_with_no_guessed_region(raw: str, home: str) -> None:
    import phonenumbers

    info = classify(raw, home)
    assert info.e164 is not None
    assert phonenumbers.is_valid_number(phonenumbers.parse(info.e164)) is False
    assert (info.number_type, info.region, info.is_valid) == (NumberType.UNKNOWN, None, False)
    assert info.country_code == phonenumbers.parse(info.e164).country_code


SHORT_NUMBER_CASES = [
    # (raw, home, type, short_cost)
    ("112", "IT", NumberType.EMERGENCY, "toll_free"),
    ("112", "DE", NumberType.EMERGENCY, "toll_free"),
    ("110", "DE", NumberType.EMERGENCY, "toll_free"),
    ("911", "US", NumberType.EMERGENCY, "toll_free"),
    ("112", "US", NumberType.EMERGENCY, "toll_free"),
    ("999", "GB", NumberType.EMERGENCY, "toll_free"),
    ("112", "GB", NumberType.EMERGENCY, "toll_free"),
    ("113", "IT", NumberType.EMERGENCY, "toll_free"),
    ("118", "IT", NumberType.EMERGENCY, "toll_free"),
    ("000", "AU", NumberType.EMERGENCY, "toll_free"),
    ("tel:112", "FR", NumberType.EMERGENCY, "toll_free"),
    ("sip:112@pbx.local", "DE", NumberType.EMERGENCY, "toll_free"),
    # premium-rate short codes (libphonenumber ShortNumberMetadata)
    ("4242", "BE", NumberType.SHORT_CODE, "premium_rate"),
    ("1200", "IT", NumberType.SHORT_CODE, "premium_rate"),
    ("1000", "FR", NumberType.SHORT_CODE, "premium_rate"),
    ("24280", "US", NumberType.SHORT_CODE, "premium_rate"),
    ("120", "ES", NumberType.SHORT_CODE, "premium_rate"),
    ("1234", "AU", NumberType.SHORT_CODE, "premium_rate"),
    # other costs
    ("105", "GB", NumberType.SHORT_CODE, "toll_free"),
    ("116000", "IT", NumberType.SHORT_CODE, "toll_free"),
    ("23333", "US", NumberType.SHORT_CODE, "standard_rate"),
    ("4242", "US", NumberType.SHORT_CODE, "unknown_cost"),
    ("12", "SN", NumberType.SHORT_CODE, "unknown_cost"),
    ("100", "GB", NumberType.SHORT_CODE, "unknown_cost"),
]


@pytest.mark.parametrize(("raw", "home", "expected", "cost"), SHORT_NUMBER_CASES)
def test_classify_short_numbers(raw: str, home: str, expected: NumberType, cost: str) -> None:
    info = classify(raw, home)
    assert info == NumberInfo(
        e164=None,
        region=home,
        country_code=info.country_code,
        number_type=expected,
        is_emergency=expected is NumberType.EMERGENCY,
        short_cost=cost,
        international=False,
        is_valid=True,
    )
    assert info.country_code is not None and info.country_code > 0
    assert normalize(raw, home) is None


@pytest.mark.parametrize(
    ("raw", "home", "cc"),
    [("112", "IT", 39), ("112", "DE", 49), ("911", "US", 1), ("999", "GB", 44)],
)
def test_emergency_is_flagged(raw: str, home: str, cc: int) -> None:
    info = classify(raw, home)
    assert info.number_type is NumberType.EMERGENCY
    assert info.is_emergency is True
    assert info.country_code == cc
    assert info.e164 is None


def test_emergency_depends_on_home_country() -> None:
    assert classify("911", "IT").number_type is NumberType.EXTENSION
    assert classify("999", "US").number_type is NumberType.EXTENSION


EXTENSION_CASES = [
    ("1002", "DE"),
    ("1002", "GB"),
    ("201", "GB"),
    ("5", "IT"),
    ("*97", "US"),
    ("*72#", "IT"),
    ("#31#", "DE"),
    ("sip:1002@pbx.local", "DE"),
    ('"Reception" <sip:201@pbx.local>', "GB"),
    ("0612", "IT"),
    ("12345", "AT"),
    ("911", "IT"),
]


@pytest.mark.parametrize(("raw", "home"), EXTENSION_CASES)
def test_classify_extension(raw: str, home: str) -> None:
    assert classify(raw, home) == NumberInfo(
        e164=None,
        region=None,
        country_code=None,
        number_type=NumberType.EXTENSION,
        is_emergency=False,
        short_cost=None,
        international=False,
        is_valid=False,
    )


GARBAGE_CASES = ["", "s", "&", "anonymous", "sip:alice@example.com", "+", "*", "1234567*890", "unknown"]


@pytest.mark.parametrize("raw", GARBAGE_CASES)
def test_classify_garbage_invalid(raw: str) -> None:
    assert classify(raw, "IT") == NumberInfo(
        e164=None,
        region=None,
        country_code=None,
        number_type=NumberType.INVALID,
        is_emergency=False,
        short_cost=None,
        international=False,
        is_valid=False,
    )


ACCESS_CODE_CLASSIFY_CASES = [
    # (raw, home, codes, type, e164, short_cost)
    ("9 0044 90 1234 5678", "GB", ("9",), NumberType.PREMIUM_RATE, "+449012345678", None),
    ("9 090 1234 5678", "GB", ("9",), NumberType.PREMIUM_RATE, "+449012345678", None),
    ("9 4242", "BE", ("9",), NumberType.SHORT_CODE, None, "premium_rate"),
    ("9 112", "IT", ("9",), NumberType.EMERGENCY, None, "toll_free"),
    ("0 112", "DE", ("0",), NumberType.EMERGENCY, None, "toll_free"),
    # emergency numbers are recognised without the access code too
    ("911", "US", ("9",), NumberType.EMERGENCY, None, "toll_free"),
    ("112", "DE", ("0",), NumberType.EMERGENCY, None, "toll_free"),
    # with an access code configured, a short code dialled without it is internal
    ("4242", "BE", ("9",), NumberType.EXTENSION, None, None),
    ("1002", "IT", ("0",), NumberType.EXTENSION, None, None),
    ("9 1002", "DE", ("9",), NumberType.EXTENSION, None, None),
]


@pytest.mark.parametrize(("raw", "home", "codes", "expected", "e164", "cost"), ACCESS_CODE_CLASSIFY_CASES)
def test_classify_access_codes(
    raw: str, home: str, codes: tuple[str, ...], expected: NumberType, e164: str | None, cost: str | None
) -> None:
    info = classify(raw, home, codes)
    assert info.number_type is expected
    assert info.e164 == e164
    assert info.short_cost == cost


SHORT_NUMBER_OF_CASES = [
    # (raw, home, access codes, the short number reached or None)
    ("112", "IT", (), "112"),
    ("113", "IT", (), "113"),
    ("118", "IT", (), "118"),
    ("1200", "IT", (), "1200"),  # premium-rate carrier service
    ("4 8280", "IT", (), "48280"),
    ("999", "GB", (), "999"),
    ("111", "GB", (), "111"),
    ("sip:112@pbx.local", "DE", (), "112"),
    ("9 112", "IT", ("9",), "112"),  # access code removed
    ("112", "IT", ("9",), "112"),  # emergency numbers also without it
    ("9 4242", "BE", ("9",), "4242"),
    ("4242", "BE", ("9",), None),  # with an access code configured, a short code needs it
    ("201", "IT", (), None),  # an extension
    ("999", "US", (), None),
    ("+390612345678", "IT", (), None),  # public numbers normalise instead
    ("0612345678", "IT", (), None),
    ("*97", "IT", (), None),
    ("anonymous", "IT", (), None),
]


@pytest.mark.parametrize(("raw", "home", "codes", "expected"), SHORT_NUMBER_OF_CASES)
def test_short_number(raw: str, home: str, codes: tuple[str, ...], expected: str | None) -> None:
    assert short_number(raw, home, codes) == expected
    if expected is not None:  # the same decision as classify's
        assert classify(raw, home, codes).number_type in (NumberType.EMERGENCY, NumberType.SHORT_CODE)
        assert classify(expected, home).number_type is classify(raw, home, codes).number_type


def test_short_code_without_access_code_configured() -> None:
    # without access codes libphonenumber's short-number metadata decides; 1002 is an IT short code
    info = classify("1002", "IT")
    assert info.number_type is NumberType.SHORT_CODE
    assert info.short_cost == "unknown_cost"
    assert normalize("1002", "IT") is None


# --------------------------------------------------------------------------- international flag

INTERNATIONAL_CASES = [
    ("+390612345678", "IT", False),
    ("06 1234 5678", "IT", False),
    ("+442079460000", "IT", True),
    ("0044 20 7946 0000", "IT", True),
    ("+442079460000", "GB", False),
    ("+447624123456", "GB", True),  # Isle of Man shares +44
    ("+14165550123", "US", True),  # Canada shares +1
    ("+12015550123", "US", False),
    ("+12015550123", "CA", True),
    ("+881612345678", "IT", True),  # non-geographic "001" is always international
    ("+80012345678", "US", True),
    ("+97912345678", "IT", True),
    ("112", "IT", False),
    ("4242", "BE", False),
    ("1002", "DE", False),
    ("*97", "US", False),
]


@pytest.mark.parametrize(("raw", "home", "expected"), INTERNATIONAL_CASES)
def test_international_flag(raw: str, home: str, expected: bool) -> None:
    assert classify(raw, home).international is expected


def test_classify_full_record() -> None:
    assert classify("0044 90 1234 5678", "IT") == NumberInfo(
        e164="+449012345678",
        region="GB",
        country_code=44,
        number_type=NumberType.PREMIUM_RATE,
        is_emergency=False,
        short_cost=None,
        international=True,
        is_valid=True,
    )
    assert classify("899 123 456", "IT") == NumberInfo(
        e164="+39899123456",
        region="IT",
        country_code=39,
        number_type=NumberType.PREMIUM_RATE,
        is_emergency=False,
        short_cost=None,
        international=False,
        is_valid=True,
    )


def test_classify_case_insensitive_country() -> None:
    assert classify("06 1234 5678", "it") == classify("06 1234 5678", "IT")


def test_numberinfo_is_frozen_and_slotted() -> None:
    info = classify("+390612345678", "IT")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.e164 = "+1"  # type: ignore[misc]
    assert not hasattr(info, "__dict__")


def test_number_type_values() -> None:
    assert {t.name: t.value for t in NumberType} == {
        "PREMIUM_RATE": "premium_rate",
        "SHARED_COST": "shared_cost",
        "PERSONAL_NUMBER": "personal_number",
        "TOLL_FREE": "toll_free",
        "UAN": "uan",
        "VOIP": "voip",
        "MOBILE": "mobile",
        "FIXED_LINE": "fixed_line",
        "FIXED_LINE_OR_MOBILE": "fixed_line_or_mobile",
        "PAGER": "pager",
        "VOICEMAIL": "voicemail",
        "EMERGENCY": "emergency",
        "SHORT_CODE": "short_code",
        "UNKNOWN": "unknown",
        "INVALID": "invalid",
        "EXTENSION": "extension",
    }
    assert NumberType("premium_rate") is NumberType.PREMIUM_RATE
    assert f"{NumberType.SHARED_COST}" == "shared_cost"


def test_functions_are_cached() -> None:
    assert classify.cache_info().maxsize == CACHE_SIZE == 200_000
    assert normalize.cache_info().maxsize == CACHE_SIZE
    classify("+390612345679", "IT")
    hits = classify.cache_info().hits
    first = classify("+390612345679", "IT")
    assert classify.cache_info().hits == hits + 1
    assert classify("+390612345679", "IT") is first


# --------------------------------------------------------------------------- matches_prefix

RISKY_PREFIXES = ("+881", "+8823", "+88234", "+882", "+979", "+44", "+447", "+4470", "+3989", "+39899")

PREFIX_CASES = [
    ("+8823123456789", "+8823"),
    ("+88234851234567", "+88234"),
    ("+88216123456789", "+882"),
    ("+881612345678", "+881"),
    ("+979123456789", "+979"),
    ("+447012345678", "+4470"),
    ("+447400123456", "+447"),
    ("+442079460000", "+44"),
    ("+39899123456", "+39899"),
    ("+39891234567", "+3989"),
    ("+390612345678", None),
    ("+12015550123", None),
    ("+88", None),
    ("+8823", "+8823"),
    ("", None),
]


@pytest.mark.parametrize(("e164", "expected"), PREFIX_CASES)
@pytest.mark.parametrize("container", [tuple, list, frozenset, set, compile_prefixes])
def test_matches_prefix_longest(e164: str, expected: str | None, container: type) -> None:
    assert matches_prefix(e164, container(RISKY_PREFIXES)) == expected


def test_matches_prefix_none_and_generator() -> None:
    assert matches_prefix(None, RISKY_PREFIXES) is None
    assert matches_prefix("+8823123456789", (p for p in RISKY_PREFIXES)) == "+8823"
    assert matches_prefix("+8823123456789", ()) is None


def test_matches_prefix_returns_prefix_as_listed() -> None:
    assert matches_prefix("+8823123456789", ["881", "8823"]) == "8823"
    assert matches_prefix("+8823123456789", ["00882"]) == "00882"
    assert matches_prefix("+442079460000", ["+44 20"]) == "+44 20"


def test_matches_prefix_with_classify() -> None:
    info = classify("0097912345678", "IT")  # invalid per libphonenumber, still matched by prefix rules
    assert info.number_type is NumberType.UNKNOWN
    assert matches_prefix(info.e164, RISKY_PREFIXES) == "+979"


def test_matches_prefix_many_prefixes() -> None:
    prefixes = (*(f"+{n}" for n in range(2000, 2400)), "+8823", "+88", "+881")
    index = compile_prefixes(prefixes)
    assert isinstance(index, PrefixIndex)
    assert index.lengths == (5, 4, 3)
    assert compile_prefixes(index) is index
    assert matches_prefix("+8823123456789", index) == "+8823"
    assert matches_prefix("+2399123", prefixes) == "+2399"
    assert matches_prefix("+2400123", prefixes) is None
    assert matches_prefix("+8812345678", prefixes) == "+881"


@pytest.mark.parametrize(
    ("raw", "country", "e164", "number_type", "valid"),
    [
        ("+4900822978790", "IT", "+490822978790", "fixed_line", True),  # two zeros after +49: E.164 keeps one
        ("+3860008780791", "DE", "+386008780791", "unknown", False),
        ("+390612345678", "DE", "+390612345678", "fixed_line", True),
        ("0612345678", "IT", "+390612345678", "fixed_line", True),
    ],
)
def test_a_number_is_typed_as_its_e164_form_reads(
    raw: str, country: str, e164: str, number_type: str, valid: bool
) -> None:
    """Regression for typing from the parsed input (issue 11): type and validity are those of the
    E.164 string, which differs from the input where zeros follow the country code."""
    from tollguard.numbers import classify

    assert normalize(raw, country) == e164
    info = classify(raw, country)
    assert (info.e164, info.number_type.value, info.is_valid) == (e164, number_type, valid)
