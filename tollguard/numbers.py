"""Number normalisation and typing shared by every detector.

All numbering knowledge comes from libphonenumber (the ``phonenumbers``
package): the international / national (trunk) prefixes of each region, the
number ranges and their types (premium rate, shared cost, ...), and the
short-number metadata (emergency numbers, service short codes and their
expected cost). Nothing here hand-writes a numbering plan; the only structural
rule taken from elsewhere is the ITU-T E.164 bound of 15 digits for an
international number.

The pure functions :func:`normalize` and :func:`classify` are memoised with
:func:`functools.lru_cache` (``CACHE_SIZE`` entries each), so a stream of CDRs
with repeated numbers pays the libphonenumber cost once per distinct
``(value, country, access_codes)``. Arguments must therefore be hashable: pass
``access_codes`` as a tuple.

Vocabulary
----------
public number
    A number of the public telephone network that can be written in E.164
    (``+`` country code, national significant number, at most 15 digits).
short number
    Emergency number or service short code (``112``, ``911``, ``4242``) that
    is only dialable inside one region; it has no E.164 form.
extension
    A short internal PBX number (``1002``, ``*97``); not a public number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from re import _constants as _sre  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from urllib.parse import unquote

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    CountryCodeSource,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberFormat,
    PhoneNumberType,
    ValidationResult,
    shortnumberinfo,
)
from phonenumbers.shortnumberinfo import ShortNumberCost

try:  # libphonenumber's own "national prefix present if required" check (Leniency.VALID)
    from phonenumbers.phonenumbermatcher import _is_national_prefix_present_if_required
except ImportError:  # pragma: no cover - only if a future phonenumbers drops the helper

    def _is_national_prefix_present_if_required(numobj: PhoneNumber) -> bool:
        return True

#: Country codes most targeted by International Revenue Share Fraud (IRSF): CFCA fraud loss
#: survey and GSMA IRSF hot lists. Used by the arbitrage detector's high-cost check and the
#: anomaly model's features.
IRSF_COUNTRY_CODES: tuple[str, ...] = (
    "+239", "+225", "+232", "+221", "+252", "+260", "+263", "+269", "+371", "+372", "+375", "+53",
    "+675", "+677", "+678", "+685", "+686", "+688", "+690", "+881", "+882", "+883",
)  # fmt: skip


__all__ = [
    "CACHE_SIZE",
    "E164_MAX_DIGITS",
    "MAX_EXTENSION_DIGITS",
    "NON_GEOGRAPHIC_REGION",
    "NumberInfo",
    "NumberType",
    "PrefixIndex",
    "classify",
    "compile_prefixes",
    "counted_destination",
    "matches_prefix",
    "normalize",
    "short_number",
]

CACHE_SIZE = 200_000
"""Entries kept by each memoised function (number of distinct argument tuples)."""

E164_MAX_DIGITS = 15
"""Maximum digits of an international number, country code included (ITU-T E.164 §6)."""

MIN_NSN_DIGITS = 4
"""Shortest national significant number accepted in international form (digits).

E.164 sets no minimum; the shortest national numbers in service have 4 digits
(e.g. Niue +683 xxxx), which is also what libphonenumber's metadata implies.
"""

MAX_EXTENSION_DIGITS = 6
"""Longest digit string (digits, ``*``/``#`` not counted) still typed as a PBX extension.

Private dial plans rarely exceed 6 digits; a longer string that is not a public
number is more likely a mistyped or local public number and is typed
:attr:`NumberType.INVALID`, so that it is not mistaken for internal traffic.
"""

NON_GEOGRAPHIC_REGION = "001"
"""Region code libphonenumber uses for non-geographic country codes (+800, +881, +882, +883, +979, ...)."""


class NumberType(StrEnum):
    """Type of a dialled or presented number.

    Members mirror :class:`phonenumbers.PhoneNumberType` (libphonenumber
    metadata), plus the types of values that are not public numbers.
    """

    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    PERSONAL_NUMBER = "personal_number"
    TOLL_FREE = "toll_free"
    UAN = "uan"
    VOIP = "voip"
    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    PAGER = "pager"
    VOICEMAIL = "voicemail"
    EMERGENCY = "emergency"
    """Emergency short number of the home region (112, 911, 999, 113, 118, ...)."""
    SHORT_CODE = "short_code"
    """Valid service short number of the home region (see :attr:`NumberInfo.short_cost`)."""
    UNKNOWN = "unknown"
    """A number libphonenumber finds invalid: a known country code, but digits in no range of its
    metadata (unallocated, newer than the metadata, wrong length) or a national digit string that
    does not normalise; it has no region."""
    INVALID = "invalid"
    """Not a number at all: garbage, a SIP user name, no known country code."""
    EXTENSION = "extension"
    """Short internal PBX number or feature code (``1002``, ``*97``); not a public number."""


_PN_TYPE_MAP: dict[int, NumberType] = {
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL_NUMBER,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
    PhoneNumberType.UNKNOWN: NumberType.UNKNOWN,
}

_SHORT_COST: dict[int, str] = {
    ShortNumberCost.TOLL_FREE: "toll_free",
    ShortNumberCost.STANDARD_RATE: "standard_rate",
    ShortNumberCost.PREMIUM_RATE: "premium_rate",
    ShortNumberCost.UNKNOWN_COST: "unknown_cost",
}


@dataclass(frozen=True, slots=True)
class NumberInfo:
    """What tollguard knows about one number, as typed by :func:`classify`.

    Attributes
    ----------
    e164 : str or None
        E.164 form (``"+39061234567"``) of a public number, i.e. what
        :func:`normalize` returns. For an :attr:`NumberType.INVALID` value
        written in international form (``+`` or an international prefix) with
        a known country code, the ``+`` country code and digits as written, so
        that prefix rules (:func:`matches_prefix`) still apply. None for short
        numbers, extensions and garbage.
    region : str or None
        ISO 3166-1 alpha-2 region of a valid number (``phonenumbers.region_code_for_number``),
        ``"001"`` for non-geographic country codes (+800, +808, +870, +881, +882, +883,
        +979, ...); for a short number, the home region. None for numbers libphonenumber
        finds invalid (:attr:`NumberType.UNKNOWN`: no region is guessed from the country
        code), extensions and garbage.
    country_code : int or None
        ITU-T E.164 country calling code (``39``, ``881``); home country code for
        short numbers and national digit strings; None for extensions and garbage.
    number_type : NumberType
        Type from libphonenumber's metadata (``phonenumbers.number_type``) or
        EMERGENCY / SHORT_CODE / UNKNOWN / INVALID / EXTENSION.
    is_emergency : bool
        True for an emergency short number of the home region.
    short_cost : str or None
        ``"toll_free"``, ``"standard_rate"``, ``"premium_rate"`` or
        ``"unknown_cost"`` for short numbers
        (``phonenumbers.shortnumberinfo.expected_cost_for_region``); None for
        every other value.
    international : bool
        True when ``region`` differs from the home country (any ``"001"``
        number included); for a number without region, when its country code
        differs from the home country's. False for short numbers and extensions.
    is_valid : bool
        True for numbers libphonenumber's metadata declares valid (long numbers
        with ``is_valid_number``, short numbers with
        ``is_valid_short_number_for_region`` or ``is_emergency_number``).
    """

    e164: str | None
    region: str | None
    country_code: int | None
    number_type: NumberType
    is_emergency: bool
    short_cost: str | None
    international: bool
    is_valid: bool


# --------------------------------------------------------------------------- cleaning

_SEPARATORS = str.maketrans("", "", " \t\r\n-.()[]/~\u00a0\u2010\u2011\u2012\u2013\u2014\u2212")
_NUMBER_RE = re.compile(r"\+?[0-9]+")
_FEATURE_RE = re.compile(r"[0-9*#]*[0-9][0-9*#]*")


def _clean(raw: object) -> str | None:
    """Strip URI wrappers and separators; None when no dialable string remains.

    Parameters
    ----------
    raw : object
        Value written by the switch: ``"+39 06 1234 5678"``, ``"tel:+39-06..."``,
        ``"sip:0612345678@pbx;user=phone"``, ``'"Bob" <sip:1002@pbx>'``.

    Returns
    -------
    str or None
        ``+``-prefixed or plain digit string, or a digit string with ``*``/``#``
        (PBX feature code); None for empty values and non-numeric user parts.
    """
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    if not s:
        return None
    lt = s.find("<")
    if lt != -1:  # name-addr: '"Display" <sip:user@host>'
        gt = s.find(">", lt)
        s = s[lt + 1 : gt if gt != -1 else None].strip()
    head = s[:5].lower()
    if head.startswith(("sip:", "sips:", "tel:")):
        s = s.split(":", 1)[1]
    if "@" in s:  # user part of a SIP URI (RFC 3261 §19.1)
        s = s.split("@", 1)[0]
    s = s.split(";", 1)[0].split("?", 1)[0]  # tel / user parameters, URI headers
    if "%" in s:
        s = unquote(s)
    s = s.translate(_SEPARATORS)
    if _NUMBER_RE.fullmatch(s) or _FEATURE_RE.fullmatch(s):
        return s
    return None


# --------------------------------------------------------------------------- helpers


def _e164(numobj: PhoneNumber) -> str:
    return phonenumbers.format_number(numobj, PhoneNumberFormat.E164)


def _short_numobj(digits: str, region: str) -> PhoneNumber | None:
    """Build the PhoneNumber that shortnumberinfo expects for ``digits`` dialled in ``region``.

    Leading zeros are kept (``"000"`` in AU, ``"01"`` in RU) the way
    libphonenumber stores them (``italian_leading_zero``).
    """
    cc = phonenumbers.country_code_for_region(region)
    if not cc or not digits.isdigit():
        return None
    stripped = digits.lstrip("0")
    zeros = len(digits) - len(stripped) if stripped else len(digits) - 1
    numobj = PhoneNumber(country_code=cc, national_number=int(digits))
    if zeros:
        numobj.italian_leading_zero = True
        numobj.number_of_leading_zeros = zeros
    return numobj


_NOT_SHORT: tuple[bool, bool, str | None] = (False, False, None)


def _short_info(digits: str, region: str) -> tuple[bool, bool, str | None]:
    """Short-number metadata lookup: ``(is_emergency, is_valid_short, cost)``.

    Sources: ``shortnumberinfo.is_emergency_number``,
    ``is_valid_short_number_for_region`` and ``expected_cost_for_region``
    (libphonenumber ShortNumberMetadata.xml). A string of ASCII digits longer than any
    short number of ``region`` can be (:func:`_short_max_len`) is neither, without the
    lookup; the rest is memoised (:func:`_short_info_lookup`).
    """
    if len(digits) > _short_max_len(region) and digits.isascii():
        return _NOT_SHORT
    return _short_info_lookup(digits, region)


@lru_cache(maxsize=CACHE_SIZE)
def _short_info_lookup(digits: str, region: str) -> tuple[bool, bool, str | None]:
    """:func:`_short_info` by libphonenumber's short-number functions themselves."""
    numobj = _short_numobj(digits, region)
    if numobj is None:
        return _NOT_SHORT
    emergency = shortnumberinfo.is_emergency_number(digits, region)
    valid = emergency or shortnumberinfo.is_valid_short_number_for_region(numobj, region)
    if not valid:
        return _NOT_SHORT
    cost = _SHORT_COST[shortnumberinfo.expected_cost_for_region(numobj, region)]
    return emergency, True, cost


def _short_max_len(region: str) -> int:
    """Longest digit string that can be an emergency number or a valid short number of ``region``.

    Read from ``region``'s short-number metadata (ShortNumberMetadata.xml), by what the
    functions of :func:`_short_info_lookup` test: ``is_emergency_number`` fully matches the
    digits against the ``emergency`` pattern (no length list), so at most the longest match of
    that pattern (:func:`_pattern_longest`); ``is_valid_short_number_for_region`` requires the
    digits' length to be in ``general_desc.possible_length`` (or, without lengths, a full match
    of its pattern). No short metadata: 0 (libphonenumber finds no short number there).
    A pattern that cannot be analysed gives :data:`_INFINITE` (the lookup always runs).
    """
    hit = _SHORT_MAX_LEN.get(region)
    if hit is None:
        hit = 0
        md = PhoneMetadata.short_metadata_for_region(region, None)
        if md is not None:
            general, emergency = md.general_desc, md.emergency
            if general is not None and general.national_number_pattern:
                lengths = general.possible_length
                hit = max(lengths) if lengths else _pattern_longest(general.national_number_pattern)
            if emergency is not None and emergency.national_number_pattern:
                hit = max(hit, _pattern_longest(emergency.national_number_pattern))
        _SHORT_MAX_LEN[region] = hit
    return hit


_SHORT_MAX_LEN: dict[str, int] = {}


@lru_cache(maxsize=4096)
def _parse(digits: str, region: str | None) -> PhoneNumber | None:
    """``phonenumbers.parse`` with the raw input kept; None when it cannot parse.

    Lightly cached so that the E.164 string produced by :func:`normalize` is not
    parsed again by :func:`_typing` (callers must not mutate the result). A value
    written in E.164 takes :func:`_parse_e164` (the same PhoneNumber, without the
    general parser's text extraction).
    """
    if digits[:1] == "+":
        fast = _parse_e164(digits)
        if fast is not None:
            return fast
    try:
        return phonenumbers.parse(digits, region, keep_raw_input=True)
    except NumberParseException:
        return None


_E164_TEXT_RE = re.compile(r"\+[1-9][0-9]{5,19}")


def _parse_e164(text: str) -> PhoneNumber | None:
    """``phonenumbers.parse(text, any_region, keep_raw_input=True)`` of a ``+``-and-ASCII-digits
    string whose national part libphonenumber would not change, else None (use ``parse``).

    For such a string ``parse`` finds no text to strip, no extension, and a country code
    (the 1-3 digit prefix in its country-code table); it then strips a national prefix
    only where the country's ``national_prefix_for_parsing`` matches the rest, so when it
    does not match (or there is none), the national significant number is the rest as
    written (leading zeros kept the way ``parse`` keeps them). Everything else
    (a national prefix after the country code, an unknown country code, a length at the
    edges of what ``parse`` accepts) goes to ``parse`` itself (see :func:`_e164_parts`).
    ``tests/test_numbers_cache.py`` checks equality with ``parse`` on many numbers.
    """
    parts = _e164_parts(text)
    return None if parts is None else _numobj(parts[0], parts[1], text)


def _e164_parts(text: str) -> tuple[int, str] | None:
    """``(country code, NSN as written)`` of an E.164 string :func:`_parse_e164` may take, else None."""
    if len(text) > 21 or not _E164_TEXT_RE.fullmatch(text):
        return None
    for size in (1, 2, 3):
        cc = int(text[1 : size + 1])
        if cc in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    rest = text[size + 1 :]
    if not 4 <= len(rest) <= 17:
        return None
    npfp = _NPFP.get(cc)
    if npfp is None:
        md = PhoneMetadata.metadata_for_region_or_calling_code(cc, phonenumbers.region_code_for_country_code(cc))
        if md is None:
            return None
        prefix = md.national_prefix_for_parsing
        npfp = _NPFP[cc] = _compiled(prefix) if prefix else _NEVER
    if npfp.match(rest):
        return None
    return cc, rest


#: country code -> its main region's compiled ``national_prefix_for_parsing`` (:data:`_NEVER`: none)
_NPFP: dict[int, re.Pattern[str]] = {}
_NEVER = re.compile(r"(?!)")


def _numobj(cc: int, rest: str, text: str) -> PhoneNumber:
    """The PhoneNumber ``parse`` builds for ``text`` = ``+``, ``cc``, ``rest`` (see :func:`_parse_e164`)."""
    numobj = PhoneNumber(
        country_code=cc,
        national_number=int(rest),
        raw_input=text,
        country_code_source=CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
    )
    if rest[0] == "0":  # as parse's _set_italian_leading_zeros_for_phone_number
        numobj.italian_leading_zero = True
        zeros = 1
        while zeros < len(rest) - 1 and rest[zeros] == "0":
            zeros += 1
        if zeros != 1:
            numobj.number_of_leading_zeros = zeros
    return numobj


def _normalize_e164(text: str) -> str | bool | None:
    """:func:`normalize` of a value written in E.164 that :func:`_e164_parts` takes: ``text``
    itself or None, without building a PhoneNumber on a typing cache hit; False when it does
    not take it.

    Same steps as :func:`_international_ok` on ``parse(text)``: its E.164 form is ``text``
    (``+``, country code, NSN as written), its NSN ``rest``.
    """
    parts = _e164_parts(text)
    if parts is None:
        return False
    cc, rest = parts
    if len(str(cc)) + len(rest) > E164_MAX_DIGITS:
        return None
    _region, known_cc, ntype, _valid = _type_parts(cc, rest, text)
    if known_cc is None or ntype is NumberType.INVALID:
        return None
    return text


_COMPILED: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    """``re.compile`` kept for good (metadata patterns are a few thousand; ``re``'s own cache holds 512)."""
    hit = _COMPILED.get(pattern)
    if hit is None:
        hit = _COMPILED[pattern] = re.compile(pattern)
    return hit


# ----------------------------------------------------------- typing cached by what decides it
#
# libphonenumber types a number (``number_type``, ``region_code_for_number``,
# ``is_possible_number``) from its country code and national significant number (NSN) only,
# by matching its metadata's regular expressions against the NSN (``match`` / ``fullmatch``
# from the first digit) and by the NSN's length. Those patterns name specific digits only in
# their first positions (``(?:2[1-9]|3\d)\d{6}``: the first two); after that only ``\d``.
# :func:`_pattern_reach` reads, from the parsed pattern, the last position at which any path
# through it tests a specific digit; for a country code, :func:`_cc_reach` is the largest such
# position over every pattern that typing consults (every type's pattern and the region
# selection's ``leading_digits``, in every region of the country code). Two NSNs of the same
# length that agree on their first ``reach`` digits then match every pattern alike (any path
# that matches one matches the other: the digits after ``reach`` are only ever tested by
# ``\d``), so they are typed alike: the typing is cached by (country code, NSN length, first
# ``reach`` digits). A pattern with anything but digits, digit classes, groups, alternation and
# bounded repetition has no reach: its country code is cached by whole NSN.

_INFINITE = 1 << 30
_DESC_NAMES = (
    "general_desc", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
    "uan", "voicemail", "fixed_line", "mobile",
)  # fmt: skip


def _is_any_digit(items: list[tuple[object, object]]) -> bool:
    """True for a character class that accepts every ASCII digit (``\\d``, ``[0-9]``)."""
    for op, av in items:
        if op is _sre.CATEGORY and av is _sre.CATEGORY_DIGIT:
            return True
        if op is _sre.RANGE and isinstance(av, tuple) and av[0] <= 48 and av[1] >= 57:
            return True
    return False


def _seq_reach(items: object) -> tuple[int, int]:
    """``(longest match, reach)`` of a parsed pattern sequence (``re._parser`` items); :data:`_INFINITE`
    when unbounded or unknown. ``reach`` = the furthest position (1-based, from the sequence's
    start) at which a path can test a character other than with an any-digit class."""
    offset = 0
    reach = 0
    for op, av in items:  # type: ignore[attr-defined]
        if op is _sre.LITERAL:
            longest, k = 1, 1
        elif op is _sre.IN:
            longest, k = 1, (0 if _is_any_digit(av) else 1)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            _lo, hi, sub = av
            sub_longest, sub_k = _seq_reach(sub)
            if hi is _sre.MAXREPEAT or hi >= _INFINITE or sub_longest >= _INFINITE:
                longest = _INFINITE
                k = _INFINITE if sub_k else 0
            else:
                longest = hi * sub_longest
                k = (hi - 1) * sub_longest + sub_k if sub_k else 0
        elif op is _sre.SUBPATTERN:
            longest, k = _seq_reach(av[-1])
        elif op is _sre.BRANCH:
            longest = k = 0
            for alternative in av[1]:
                alt_longest, alt_k = _seq_reach(alternative)
                longest, k = max(longest, alt_longest), max(k, alt_k)
        else:  # anchors, look-arounds, back references, ...: not analysed
            return _INFINITE, _INFINITE
        if k:
            reach = max(reach, offset + k)
        offset = min(offset + longest, _INFINITE)
    return offset, min(reach, _INFINITE)


@lru_cache(maxsize=8192)
def _pattern_reach(pattern: str) -> int:
    """How many leading digits of a national number decide whether ``pattern`` matches it
    (given its length); :data:`_INFINITE` when the pattern is not one this can analyse."""
    try:
        return _seq_reach(_sre_parse.parse(pattern))[1]
    except Exception:  # a pattern this cannot read is simply not analysed
        return _INFINITE


@lru_cache(maxsize=1024)
def _pattern_longest(pattern: str) -> int:
    """Longest string ``pattern`` can match (characters); :data:`_INFINITE` when unbounded or not analysed."""
    try:
        return _seq_reach(_sre_parse.parse(pattern))[0]
    except Exception:  # as _pattern_reach
        return _INFINITE


def _cc_reach(cc: int) -> int:
    """Leading NSN digits that decide the typing of any number of country code ``cc``."""
    hit = _CC_REACH.get(cc)
    if hit is None:
        hit = 0
        for region in COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
            if md is None:
                continue
            patterns = [md.leading_digits] if md.leading_digits else []
            for name in _DESC_NAMES:
                desc = getattr(md, name, None)
                if desc is not None and desc.national_number_pattern:
                    patterns.append(desc.national_number_pattern)
            for pattern in patterns:
                hit = max(hit, _pattern_reach(pattern))
        _CC_REACH[cc] = hit
    return hit


_CC_REACH: dict[int, int] = {}
_TYPED_BY_PREFIX: dict[tuple[int, int, str], tuple[str | None, int | None, NumberType, bool]] = {}


_TYPED: dict[str, tuple[str | None, int | None, NumberType, bool]] = {}


def _typing(e164: str, numobj: PhoneNumber | None = None) -> tuple[str | None, int | None, NumberType, bool]:
    """Type an E.164 string: ``(region, country_code, number_type, is_valid)``.

    ``is_valid`` is libphonenumber's ``is_valid_number`` (the number is in a
    typed range of its region's metadata); only a valid number has a region and
    a type. An invalid one has no region (none is guessed from the country code:
    libphonenumber names one for ``+49`` or ``+886`` but not for ``+44`` or
    ``+1``) and is typed UNKNOWN when of a possible length for its country code,
    INVALID otherwise (a distinction used by :func:`normalize` only: every
    invalid number is UNKNOWN to callers of :func:`classify`). An unassigned
    country code gives ``(None, None, INVALID, False)``.

    ``numobj``, when given, is ``e164`` already parsed (by :func:`normalize`, from the
    dialled digits): it is not parsed again. Memoised by ``e164`` (:data:`CACHE_SIZE`
    entries, then cleared: diverse destinations must not grow memory).
    """
    if numobj is None:
        parts = _e164_parts(e164)
        if parts is not None:
            return _type_parts(parts[0], parts[1], e164)
    hit = _TYPED.get(e164)
    if hit is not None:
        return hit
    result = _type_number(_parse(e164, None) if numobj is None else numobj)
    if len(_TYPED) >= CACHE_SIZE:
        _TYPED.clear()
    _TYPED[e164] = result
    return result


def _type_number(numobj: PhoneNumber | None) -> tuple[str | None, int | None, NumberType, bool]:
    """:func:`_typing` of a parsed number: one type match of its range (``number_type``),
    which is what ``is_valid_number`` tests too (valid = typed other than UNKNOWN).

    Cached by what decides it (country code, NSN length and the NSN's first
    :func:`_cc_reach` digits; see above), :data:`CACHE_SIZE` entries, then cleared.
    """
    if numobj is None:
        return None, None, NumberType.INVALID, False
    cc: int = numobj.country_code or 0
    if cc not in COUNTRY_CODE_TO_REGION_CODE:
        return None, None, NumberType.INVALID, False
    nsn = phonenumbers.national_significant_number(numobj)
    return _type_parts(cc, nsn, numobj)


def _type_parts(
    cc: int, nsn: str, numobj: PhoneNumber | str
) -> tuple[str | None, int | None, NumberType, bool]:
    """:func:`_type_number` of the number with country code ``cc`` (assigned) and NSN ``nsn``, by its
    cache key; on a miss, typed by libphonenumber from ``numobj`` (a PhoneNumber, or the E.164 text
    that :func:`_e164_parts` split into ``cc`` and ``nsn``)."""
    reach = _cc_reach(cc)
    key = (cc, len(nsn), nsn if reach >= len(nsn) else nsn[:reach])
    hit = _TYPED_BY_PREFIX.get(key)
    if hit is None:
        hit = _type_number_direct(_numobj(cc, nsn, numobj) if isinstance(numobj, str) else numobj)
        if len(_TYPED_BY_PREFIX) >= CACHE_SIZE:
            _TYPED_BY_PREFIX.clear()
        _TYPED_BY_PREFIX[key] = hit
    return hit


def _type_number_direct(numobj: PhoneNumber) -> tuple[str | None, int | None, NumberType, bool]:
    """:func:`_type_number` without its cache: libphonenumber itself."""
    cc: int = numobj.country_code or 0
    if phonenumbers.region_code_for_country_code(cc) == phonenumbers.UNKNOWN_REGION:
        return None, None, NumberType.INVALID, False
    pn_type = phonenumbers.number_type(numobj)
    if pn_type != PhoneNumberType.UNKNOWN:
        return phonenumbers.region_code_for_number(numobj), cc, _PN_TYPE_MAP[pn_type], True
    if phonenumbers.is_possible_number_with_reason(numobj) == ValidationResult.IS_POSSIBLE:
        return None, cc, NumberType.UNKNOWN, False
    return None, cc, NumberType.INVALID, False


def _international_ok(numobj: PhoneNumber, written: str = "") -> str | None:
    """E.164 of a number written in international form, or None.

    Accepted: assigned country code, at most 15 digits (ITU-T E.164), and valid
    or of a possible length for that country (libphonenumber metadata).
    """
    e164 = _e164(numobj)
    # typed from numobj only when it is what parsing e164 gives (written as e164 itself): leading
    # zeros after the country code (+49 00…, +386 000…) are written differently in e164
    nsn = phonenumbers.national_significant_number(numobj)
    return _international_parts_ok(numobj.country_code or 0, nsn, e164, numobj if e164 == written else None)


def _international_parts_ok(cc: int, nsn: str, e164: str, numobj: PhoneNumber | None = None) -> str | None:
    """:func:`_international_ok` of the number with country code ``cc``, NSN ``nsn`` and E.164 form
    ``e164`` (``numobj``: that number parsed, when parsing ``e164`` gives it)."""
    if len(nsn) < MIN_NSN_DIGITS or len(str(cc)) + len(nsn) > E164_MAX_DIGITS:
        return None
    _region, known_cc, ntype, _valid = _typing(e164, numobj)
    if known_cc is None or ntype is NumberType.INVALID:
        return None
    return e164


def _explicit_national_prefix(digits: str, nsn: str, region: str) -> bool:
    """True when ``digits`` (NSN ``nsn``) starts with the trunk prefix (``0`` DE/GB/FR, ``8`` RU, ``1`` NANP).

    Digits that start with the region's international prefix (``00`` in DE, where
    ``0`` is also the trunk prefix) are not national numbers.
    """
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None or not md.national_prefix:
        return False
    prefix = md.national_prefix
    if md.international_prefix and re.match(md.international_prefix, digits):
        return False
    return digits.startswith(prefix) and len(digits) > len(nsn) and digits.endswith(nsn)


#: What :func:`_normalize_digits` needs of ``phonenumbers.parse(digits, region)``: country code,
#: national significant number, E.164 form (``format_number(..., E164)``), whether the
#: country code came after an international prefix (``CountryCodeSource.FROM_NUMBER_WITH_IDD``)
#: and libphonenumber's "national prefix present if required" check (True for an IDD number).
_Dialled = tuple[int, str, str, bool, bool]


def _dialled_parse(digits: str, region: str) -> _Dialled | None:
    """:data:`_Dialled` of ``digits`` dialled in ``region`` by ``phonenumbers.parse``; None when it cannot parse."""
    numobj = _parse(digits, region)
    if numobj is None:
        return None
    cc: int = numobj.country_code or 0
    nsn = phonenumbers.national_significant_number(numobj)
    if numobj.country_code_source == CountryCodeSource.FROM_NUMBER_WITH_IDD:
        return cc, nsn, _e164(numobj), True, True
    return cc, nsn, _e164(numobj), False, _is_national_prefix_present_if_required(numobj)


def _normalize_digits(digits: str, region: str) -> str | None:
    """E.164 of a cleaned ``+``/digit string dialled in ``region``, or None (see :func:`normalize`)."""
    if digits.startswith("+"):
        numobj = _parse(digits, region)
        return _international_ok(numobj, digits) if numobj is not None else None
    if _short_info(digits, region)[0]:  # emergency numbers never become E.164
        return None
    dialled = _dialled_fast(digits, region) or _dialled_parse(digits, region)
    national_type = None
    e164 = ""
    if dialled is not None:
        cc, nsn, e164, idd, prefix_present = dialled
        if idd:
            international = _international_parts_ok(cc, nsn, e164)
            if international is not None:
                return international
        else:
            national_type = _typing(e164)[2]
            if national_type not in (NumberType.UNKNOWN, NumberType.INVALID) and prefix_present:
                return e164
    if _short_info(digits, region)[1]:
        return None
    # Possible length but in no range (unallocated, or newer than the metadata): accept only
    # when the trunk prefix was written, which proves a national public number.
    if (
        dialled is not None
        and national_type is NumberType.UNKNOWN
        and _explicit_national_prefix(digits, dialled[1], region)
    ):
        return e164
    if digits.startswith("00"):  # "00" international prefix, also where the region's IDD differs
        alt = _parse("+" + digits[2:], region)
        if alt is not None:
            return _international_ok(alt)
    return None


# ----------------------------------------------------- numbers dialled in national or IDD form
#
# ``phonenumbers.parse(digits, region)`` of a plain digit string decides, in this order
# (phonenumberutil.py: ``parse``, ``_maybe_extract_country_code``, ``_parse_prefix_as_idd``,
# ``_maybe_strip_national_prefix_carrier_code``, ``_test_number_length``):
#
# 1. international prefix: the region's ``international_prefix`` pattern matches the start and
#    the next digit is not 0: the rest is a country code and NSN exactly as for ``+`` and the
#    rest (:func:`_e164_parts` takes it when that country's national prefix does not match);
# 2. otherwise, when the digits start with the region's own country code, whether to read them
#    as country code + NSN: ``general_desc`` full matches of the digits and of the rest after
#    the country code and a ``national_prefix_for_parsing`` match, and the digits' length;
# 3. the national prefix: a ``national_prefix_for_parsing`` match at the start, kept only when
#    ``general_desc`` full matches of the number before / after and the remaining length allow;
#    a ``national_prefix_transform_rule`` rewrites digits instead (such regions: parse only).
#
# libphonenumber's "national prefix present if required" check (``Leniency.VALID``) adds the
# main region's ``number_format`` patterns on the NSN and its ``national_prefix_for_parsing``
# and ``general_desc`` on the digits. Every match of a prefix pattern is computed here, its
# end put in the cache key; every other pattern is a full match decided (given the length) by
# its first :func:`_pattern_reach` digits at the offset it is applied. So two digit strings of
# the same length whose prefix matches end alike and that agree on their first ``K`` digits
# (``K`` = the furthest offset + reach) are parsed alike: the NSN is the digits after the same
# number ``s`` of leading digits, and the check gives the same answer. The outcome
# (``s``, the check) of the first is cached under that key (:func:`_dialled_fast`).


@dataclass(frozen=True, slots=True)
class _DialPlan:
    """What :func:`_dialled_fast` reads of a region's metadata (see the comment above)."""

    cc: int
    ccs: str  # the country code as digits
    main: bool  # the region is its country code's main region
    idd: re.Pattern[str] | None  # international_prefix
    npfp: re.Pattern[str] | None  # national_prefix_for_parsing
    main_npfp: re.Pattern[str] | None  # the main region's one, when the region is not the main one
    reach_general: int  # general_desc (the region's and the main region's)
    reach_format: int  # the main region's number_format patterns and last leading_digits patterns


_DIAL_PLANS: dict[str, _DialPlan | None] = {}


def _dial_plan(region: str) -> _DialPlan | None:
    """The :class:`_DialPlan` of ``region``; None where the fast path does not apply (no metadata,
    a national prefix transform rule, a pattern :func:`_pattern_reach` cannot analyse)."""
    if region in _DIAL_PLANS:
        return _DIAL_PLANS[region]
    plan = None
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is not None and md.country_code:
        cc = md.country_code
        main_region = phonenumbers.region_code_for_country_code(cc)
        main_md = PhoneMetadata.metadata_for_region(main_region, None)
        transform = md.national_prefix_transform_rule or (main_md and main_md.national_prefix_transform_rule)
        if main_md is not None and not transform:
            general = [m.general_desc.national_number_pattern for m in (md, main_md) if m.general_desc]
            formats = []
            for fmt in main_md.number_format:
                formats.append(fmt.pattern)
                if fmt.leading_digits_pattern:
                    formats.append(fmt.leading_digits_pattern[-1])
            reach_general = max((_pattern_reach(p) for p in general if p), default=0)
            reach_format = max((_pattern_reach(p) for p in formats if p), default=0)
            if reach_general < _INFINITE and reach_format < _INFINITE:
                main = main_region == region
                plan = _DialPlan(
                    cc=cc,
                    ccs=str(cc),
                    main=main,
                    idd=None if md.international_prefix is None else _compiled(md.international_prefix),
                    npfp=_compiled(md.national_prefix_for_parsing) if md.national_prefix_for_parsing else None,
                    main_npfp=_compiled(main_md.national_prefix_for_parsing)
                    if not main and main_md.national_prefix_for_parsing
                    else None,
                    reach_general=reach_general,
                    reach_format=reach_format,
                )
    _DIAL_PLANS[region] = plan
    return plan


def _match_end(pattern: re.Pattern[str] | None, text: str) -> int:
    """End of ``pattern``'s match at the start of ``text``; -1 when none (or no pattern)."""
    if pattern is None:
        return -1
    m = pattern.match(text)
    return -1 if m is None else m.end()


_DIALLED: dict[tuple[str, int, int, int, int, int, str], tuple[int, bool] | None] = {}
_ASCII_DIGITS_RE = re.compile(r"[0-9]{3,17}")


def _dialled_fast(digits: str, region: str) -> _Dialled | None:
    """:func:`_dialled_parse` of a plain digit string without ``phonenumbers.parse`` where the
    metadata shows the outcome (see the comment above); None when it does not (then parse).

    International prefix: the country code and NSN of :func:`_e164_parts` of ``+`` and the rest.
    National form: cached by (region, length, prefix match ends, first ``K`` digits), the number
    of leading digits parse strips and the prefix check (:data:`_DIALLED`, :data:`CACHE_SIZE`
    entries, then cleared). An NSN of zeros only (formatted from the raw input by
    ``format_number``) and keys whose first number did not parse go to parse.
    ``tests/test_numbers_cache.py`` checks equality with :func:`_dialled_parse` on many numbers.
    """
    plan = _dial_plan(region)
    if plan is None or not _ASCII_DIGITS_RE.fullmatch(digits):
        return None
    if plan.idd is not None:
        m = plan.idd.match(digits)
        if m is not None and digits[m.end() : m.end() + 1] != "0":  # parse's _parse_prefix_as_idd
            rest = digits[m.end() :]
            parts = _e164_parts("+" + rest)
            if parts is None or not parts[1].strip("0"):
                return None
            return parts[0], parts[1], "+" + rest, True, True
    ccs = plan.ccs
    ccl = len(ccs)
    p0 = _match_end(plan.npfp, digits)
    offset = max(p0, 0)
    p1 = p3 = -2
    if digits.startswith(ccs):  # parse's check for the region's own country code without "+"
        if not plan.main:
            return None
        rest = digits[ccl:]
        p1 = _match_end(plan.npfp, rest)
        p3 = _match_end(plan.npfp, rest[p1:]) if p1 >= 0 else -1
        offset = max(offset, ccl + max(p1, 0) + max(p3, 0))
    pm = p0 if plan.main_npfp is None else _match_end(plan.main_npfp, digits)
    offset = max(offset, pm)
    k = max(ccl, offset + plan.reach_general, max(p0, 0) + plan.reach_format)
    key = (region, len(digits), p0, p1, p3, pm, digits[:k])
    if key in _DIALLED:
        recipe = _DIALLED[key]
    else:
        recipe = None
        numobj = _parse(digits, region)
        if (
            numobj is not None
            and numobj.country_code == plan.cc
            and numobj.country_code_source
            in (CountryCodeSource.FROM_DEFAULT_COUNTRY, CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN)
            and not numobj.extension
        ):
            nsn = phonenumbers.national_significant_number(numobj)
            strip = len(digits) - len(nsn)
            if 0 <= strip <= k and digits.endswith(nsn):
                recipe = strip, _is_national_prefix_present_if_required(numobj)
        if len(_DIALLED) >= CACHE_SIZE:
            _DIALLED.clear()
        _DIALLED[key] = recipe
    if recipe is None:
        return None
    strip, prefix_present = recipe
    nsn = digits[strip:]
    if not nsn.strip("0"):
        return None
    return plan.cc, nsn, f"+{ccs}{nsn}", False, prefix_present


def _access_remainders(digits: str, access_codes: tuple[str, ...]) -> list[str]:
    """Remainders of ``digits`` after each matching PBX outside-line access code, longest code first."""
    codes = sorted({c.translate(_SEPARATORS) for c in access_codes}, key=len, reverse=True)
    return [digits[len(c) :] for c in codes if c and digits.startswith(c) and len(digits) > len(c)]


# --------------------------------------------------------------------------- public API


@lru_cache(maxsize=CACHE_SIZE)
def normalize(raw: str, country: str, access_codes: tuple[str, ...] = ()) -> str | None:
    """Normalise a dialled or presented number to E.164.

    Parameters
    ----------
    raw : str
        Number as the switch wrote it: E.164 (``"+39061234567"``), with an
        international prefix of ``country`` (``"0039..."`` in IT, ``"011..."``
        in NANP, ``"810..."``/``"8~10..."`` in RU; ``"00..."`` is accepted
        everywhere), in national form with the trunk prefix (``"06 1234 5678"``
        IT, ``"020 7946 0000"`` GB, ``"8 495 123 45 67"`` RU), with spaces,
        dashes, dots or parentheses, or wrapped in ``tel:`` / ``sip:user@host``.
    country : str
        ISO 3166-1 alpha-2 region the number was dialled in (the customer's
        country); case-insensitive.
    access_codes : tuple of str, optional
        PBX outside-line access codes (``("9",)``, ``("0",)``). A code is
        stripped only when the remainder normalises and the whole value does
        not, or when the whole value is merely of possible length
        (:attr:`NumberType.UNKNOWN`) and the remainder is a valid number:
        with access code ``0`` in IT, ``"0 06 1234 5678"`` is Rome
        (+390612345678), not the unallocated +61 2345678 that ``"00612345678"``
        would be in international form.

    Returns
    -------
    str or None
        E.164 string (``"+"`` and at most 15 digits) or None when the value is
        not a public number: PBX extensions and feature codes (``"1002"``,
        ``"*97"``), short numbers (``"112"``, ``"4242"``; see :func:`classify`),
        Asterisk pseudo-extensions (``"s"``), empty values, SIP user names.

    Notes
    -----
    Rules, all from libphonenumber metadata except the E.164 length bound:

    * international form (``+`` or the region's international prefix): the
      country code must be assigned, the length within ITU-T E.164 (15 digits)
      and the number valid or of a possible length for that country;
    * national form: the number must be valid and carry the trunk prefix where
      the region requires it when dialling nationally (libphonenumber's
      ``Leniency.VALID`` rule), so ``"301234567"`` in DE (a local number) is
      rejected while ``"2015550123"`` in US is accepted; a number of possible
      length that is in no allocated range is accepted only when written with
      the trunk prefix (``"8 555 000 0001"`` RU);
    * emergency numbers and valid short numbers of the region are never
      normalised.

    Memoised (``functools.lru_cache``, :data:`CACHE_SIZE` entries): arguments
    must be hashable.

    Examples
    --------
    >>> normalize("9 0044 20 7946 0000", "GB", ("9",))
    '+442079460000'
    >>> normalize("1002", "IT") is None
    True
    """
    if isinstance(raw, str) and raw[:1] == "+":  # written in E.164 (no separators): the common case
        fast = _normalize_e164(raw)
        if fast is not False:
            return fast  # type: ignore[return-value]
    digits = _clean(raw)
    if digits is None or not _NUMBER_RE.fullmatch(digits):
        return None
    region = country.upper()
    e164 = _normalize_digits(digits, region)
    if access_codes and not digits.startswith("+") and (e164 is None or not _typing(e164)[3]):
        normalised = (_normalize_digits(rest, region) for rest in _access_remainders(digits, access_codes))
        candidates = [c for c in normalised if c is not None]
        for stripped in candidates:
            if _typing(stripped)[3]:  # a valid number after an access code wins
                return stripped
        if e164 is None and candidates:
            return candidates[0]
    return e164


def _is_international(region: str | None, cc: int | None, home: str) -> bool:
    """Abroad: a region other than ``home``; without a region, a country code other than ``home``'s."""
    if region is not None:
        return region != home
    return cc is not None and cc != phonenumbers.country_code_for_region(home)


def _long_number_info(e164: str, home: str) -> NumberInfo:
    region, cc, ntype, valid = _typing(e164)
    return NumberInfo(
        e164=e164,
        region=region,
        country_code=cc,
        number_type=ntype if valid or cc is None else NumberType.UNKNOWN,
        is_emergency=False,
        short_cost=None,
        international=_is_international(region, cc, home),
        is_valid=valid,
    )


def _short_number_info(digits: str, home: str) -> NumberInfo | None:
    emergency, valid, cost = _short_info(digits, home)
    if not valid:
        return None
    cc = phonenumbers.country_code_for_region(home)
    return NumberInfo(
        e164=None,
        region=home,
        country_code=cc or None,
        number_type=NumberType.EMERGENCY if emergency else NumberType.SHORT_CODE,
        is_emergency=emergency,
        short_cost=cost,
        international=False,
        is_valid=True,
    )


_EXTENSION_INFO = NumberInfo(None, None, None, NumberType.EXTENSION, False, None, False, False)
_INVALID_INFO = NumberInfo(None, None, None, NumberType.INVALID, False, None, False, False)


@lru_cache(maxsize=CACHE_SIZE)
def classify(raw_or_e164: str, home_country: str, access_codes: tuple[str, ...] = ()) -> NumberInfo:
    """Normalise and type one number.

    Parameters
    ----------
    raw_or_e164 : str
        Number as written by the switch or already E.164 (any form accepted
        by :func:`normalize`).
    home_country : str
        ISO 3166-1 alpha-2 region of the customer (the region the number is
        dialled in); case-insensitive.
    access_codes : tuple of str, optional
        PBX outside-line access codes, as in :func:`normalize`.

    Returns
    -------
    NumberInfo
        Type and region of the number.

    Notes
    -----
    Decision order (sources: libphonenumber PhoneNumberMetadata.xml and
    ShortNumberMetadata.xml):

    1. the value normalises (:func:`normalize`): type and region from
       ``phonenumbers.number_type`` / ``region_code_for_number`` when
       libphonenumber finds it valid (``is_valid_number``); a number it finds
       invalid (possible length, but in no range) is UNKNOWN with no region;
    2. otherwise, the digits (then the digits after an access code) are checked
       as short numbers of ``home_country``: EMERGENCY
       (``is_emergency_number``) or SHORT_CODE (``is_valid_short_number_for_region``),
       with ``short_cost`` from ``expected_cost_for_region``. When
       ``access_codes`` are configured, a value dialled *without* the access
       code is internal unless it is an emergency number, so non-emergency short
       codes are only recognised after the access code (PBX extension ranges
       overlap short-code ranges, e.g. ``1002`` in IT/FR, ``5000`` in US/BE);
    3. otherwise a digit string of at most :data:`MAX_EXTENSION_DIGITS` digits,
       possibly with ``*``/``#``, is an EXTENSION;
    4. otherwise, a value that parses to a known country code is a number
       libphonenumber finds invalid: UNKNOWN, no region, ``country_code`` filled
       in (and ``e164`` for values written in international form, so that prefix
       rules still apply); anything else is INVALID.

    Memoised (``functools.lru_cache``, :data:`CACHE_SIZE` entries): arguments
    must be hashable.

    Examples
    --------
    >>> info = classify("0044 90 1234 5678", "IT")
    >>> info.e164, info.region, info.number_type, info.international
    ('+449012345678', 'GB', <NumberType.PREMIUM_RATE: 'premium_rate'>, True)
    >>> classify("112", "DE").number_type, classify("112", "DE").is_emergency
    (<NumberType.EMERGENCY: 'emergency'>, True)
    """
    home = home_country.upper()
    e164 = normalize(raw_or_e164, home, access_codes)
    if e164 is not None:
        return _long_number_info(e164, home)

    digits = _clean(raw_or_e164)
    if digits is None:
        return _INVALID_INFO
    plain = digits.isdigit()

    short = _short_digits(digits, home, access_codes) if plain else None
    if short is not None:
        info = _short_number_info(short, home)
        if info is not None:
            return info

    if not digits.startswith("+") and sum(ch.isdigit() for ch in digits) <= MAX_EXTENSION_DIGITS:
        return _EXTENSION_INFO
    if not plain and not digits.startswith("+"):
        return _INVALID_INFO

    # A number libphonenumber finds invalid (or a national digit string that does not normalise):
    # type UNKNOWN, no region; the country code as written (international form) or the home one.
    numobj = _parse(digits, home)
    if digits.startswith("00") and (
        numobj is None or numobj.country_code_source != CountryCodeSource.FROM_NUMBER_WITH_IDD
    ):
        numobj = _parse("+" + digits[2:], home) or numobj
    if numobj is None:
        return _INVALID_INFO
    _region, cc, _ntype, _valid = _typing(_e164(numobj))
    if cc is None:
        return _INVALID_INFO
    nsn = phonenumbers.national_significant_number(numobj)
    international_form = numobj.country_code_source in (
        CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
        CountryCodeSource.FROM_NUMBER_WITH_IDD,
    )
    return NumberInfo(
        e164=f"+{cc}{nsn}" if international_form and len(str(cc)) + len(nsn) <= E164_MAX_DIGITS else None,
        region=None,
        country_code=cc,
        number_type=NumberType.UNKNOWN,
        is_emergency=False,
        short_cost=None,
        international=_is_international(None, cc, home),
        is_valid=False,
    )


def _short_digits(digits: str, home: str, access_codes: tuple[str, ...]) -> str | None:
    """The short number (emergency or valid short code of ``home``) that ``digits`` dial, or None.

    Step 2 of :func:`classify`: an emergency number as dialled, a valid short code as dialled
    when no access code is configured, else the remainder after an access code.
    """
    emergency, valid, _cost = _short_info(digits, home)
    if emergency or (valid and not access_codes):
        return digits
    for rest in _access_remainders(digits, access_codes) if access_codes else ():
        if _short_info(rest, home)[1]:
            return rest
    return None


@lru_cache(maxsize=CACHE_SIZE)
def short_number(raw: str, country: str, access_codes: tuple[str, ...] = ()) -> str | None:
    """The short number a dialled value reaches in ``country``, or None when it is none.

    A short number is an emergency number or a valid service short code of the
    region (libphonenumber's ShortNumberMetadata: ``is_emergency_number``,
    ``is_valid_short_number_for_region``), i.e. a call that leaves the PBX for
    the public network, not an internal extension. Same rules as step 2 of
    :func:`classify`: with ``access_codes`` configured, a non-emergency short code
    counts only after the access code (PBX extension ranges overlap short-code
    ranges), and the access code is not part of the result.

    Parameters
    ----------
    raw : str
        Number as the switch wrote it (``"112"``, ``"9 4242"``, ``"sip:113@pbx"``).
    country : str
        ISO 3166-1 alpha-2 region the number was dialled in; case-insensitive.
    access_codes : tuple of str, optional
        PBX outside-line access codes, as in :func:`normalize`.

    Returns
    -------
    str or None
        The short number's digits as dialled in ``country`` (``"112"``); None for
        public numbers (they normalise, see :func:`normalize`), extensions and garbage.

    Examples
    --------
    >>> short_number("113", "IT"), short_number("9 999", "GB", ("9",)), short_number("201", "IT")
    ('113', '999', None)
    """
    digits = _clean(raw)
    if digits is None or not digits.isdigit():
        return None
    region = country.upper()
    if normalize(raw, region, access_codes) is not None:
        return None
    return _short_digits(digits, region, access_codes)


# --------------------------------------------------------------------------- prefixes


@dataclass(frozen=True, slots=True, eq=False)
class PrefixIndex:
    """Prefix list compiled for longest-prefix matching (see :func:`compile_prefixes`).

    Attributes
    ----------
    by_prefix : dict of str to str
        Normalised prefix (``"+8823"``) to the prefix as listed.
    lengths : tuple of int
        Distinct prefix lengths (characters, ``+`` included), longest first.
    """

    by_prefix: dict[str, str]
    lengths: tuple[int, ...]


def _compile(prefixes: Iterable[str]) -> PrefixIndex:
    by_prefix: dict[str, str] = {}
    for listed in prefixes:
        p = str(listed).strip().translate(_SEPARATORS)
        if not p:
            continue
        if not p.startswith("+"):
            p = "+" + (p[2:] if p.startswith("00") else p)
        by_prefix.setdefault(p, listed)
    lengths = tuple(sorted({len(p) for p in by_prefix}, reverse=True))
    return PrefixIndex(by_prefix, lengths)


@lru_cache(maxsize=1024)
def _compile_cached(prefixes: tuple[str, ...] | frozenset[str]) -> PrefixIndex:
    return _compile(prefixes)


def compile_prefixes(prefixes: Iterable[str] | PrefixIndex) -> PrefixIndex:
    """Compile E.164 prefixes once for :func:`matches_prefix`.

    Parameters
    ----------
    prefixes : iterable of str or PrefixIndex
        E.164 prefixes (``"+881"``, ``"+8823"``); ``"881"`` and ``"00881"``
        are read as ``"+881"``. Shape: a few hundred entries is typical. An
        already compiled index is returned unchanged.

    Returns
    -------
    PrefixIndex
        Set of prefixes grouped by length; matching costs one dict lookup per
        distinct prefix length.
    """
    if isinstance(prefixes, PrefixIndex):
        return prefixes
    return _compile(prefixes)


def matches_prefix(e164: str | None, prefixes: Iterable[str] | PrefixIndex) -> str | None:
    """Longest listed prefix that an E.164 number starts with.

    Parameters
    ----------
    e164 : str or None
        E.164 number (``"+8823123456789"``), e.g. :attr:`NumberInfo.e164`.
    prefixes : iterable of str or PrefixIndex
        E.164 prefixes (``"+881"``, ``"+8823"``, ...). Tuples and frozensets
        are compiled once and cached; for other iterables (lists) the compiled
        form is cached by content, so pass a tuple, a frozenset or a
        :func:`compile_prefixes` result on hot paths.

    Returns
    -------
    str or None
        The matching prefix as listed, the longest one when several match;
        None when none matches or ``e164`` is empty.

    Examples
    --------
    >>> matches_prefix("+8823123456789", ("+882", "+8823", "+881"))
    '+8823'
    """
    if not e164:
        return None
    if isinstance(prefixes, PrefixIndex):
        index = prefixes
    elif isinstance(prefixes, tuple | frozenset):
        index = _compile_cached(prefixes)
    else:
        index = _compile_cached(tuple(prefixes))
    by_prefix = index.by_prefix
    n = len(e164)
    for length in index.lengths:
        if length <= n:
            listed = by_prefix.get(e164[:length])
            if listed is not None:
                return listed
    return None


def counted_destination(info: NumberInfo, dialled: str, allow: tuple[str, ...] = ()) -> str | None:
    """The destination a fraud check counts a call under, or None when the call never counts.

    Emergency numbers never count (they are always allowed), nor toll-free ones (free to
    the caller), nor numbers on the customer's allowlist: an E.164 number under one of the ``allow``
    prefixes, or a short number written exactly as listed.

    Parameters
    ----------
    info : NumberInfo
        ``classify(dialled, country)``.
    dialled : str
        The callee as in the CDR (a short number has no E.164 form and counts as written).
    allow : tuple of str
        The customer's authorised destinations: E.164 prefixes or short numbers.

    Returns
    -------
    str or None
        ``info.e164``, else ``dialled`` stripped of surrounding blanks; None for
        emergency, toll-free and allowlisted destinations.

    Examples
    --------
    >>> counted_destination(classify("+39899123456", "IT"), "+39899123456")
    '+39899123456'
    >>> counted_destination(classify("112", "IT"), "112") is None
    True
    >>> counted_destination(classify("+39899123456", "IT"), "+39899123456", allow=("+39899",)) is None
    True
    """
    if info.is_emergency or info.number_type is NumberType.TOLL_FREE:
        return None
    dest = info.e164 or dialled.strip()
    if allow and (matches_prefix(dest, allow) is not None if dest.startswith("+") else dest in allow):
        return None
    return dest


def check_region(region: str | None) -> str | None:
    """An ISO 3166 region libphonenumber knows (``"IT"``), or None.

    Raises
    ------
    ValueError
        For an unknown region such as ``"XX"``: numbers would be normalised wrongly.
    """
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        hint = " (the United Kingdom is GB)" if region.upper() == "UK" else ""
        raise ValueError(f"{region!r} is not a region libphonenumber knows (ISO 3166 alpha-2, e.g. IT){hint}")
    return region
