"""Number pools: valid E.164 numbers per (region, kind), drawn once per process from fixed seeds.

Every public number the simulator writes comes from here (or is checked by :func:`_parse_valid`),
so each one is valid for libphonenumber; :func:`_dial` gives the digits a PBX dials for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# --------------------------------------------------------------------------- number pools

_FIXED = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_MOBILE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_ANY: frozenset[int] = frozenset()
_PREMIUM = frozenset({PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST})

# (region, kind) -> (allowed types (empty = any valid), region the number must belong to or None,
#                    ((E.164 prefix, random digits appended), ...), pool size)
_POOL_SPECS: dict[tuple[str, str], tuple[frozenset[int], str | None, tuple[tuple[str, int], ...], int]] = {
    ("IT", "fixed"): (
        _FIXED,
        "IT",
        (
            ("+3902", 8),
            ("+3906", 8),
            ("+39011", 7),
            ("+39010", 7),
            ("+39051", 7),
            ("+39055", 7),
            ("+39081", 7),
            ("+39049", 7),
            ("+39045", 7),
            ("+39091", 7),
            ("+39070", 7),
            ("+39080", 7),
        ),
        1500,
    ),
    ("IT", "mobile"): (
        _MOBILE,
        "IT",
        (
            ("+39320", 7),
            ("+39328", 7),
            ("+39333", 7),
            ("+39338", 7),
            ("+39340", 7),
            ("+39347", 7),
            ("+39348", 7),
            ("+39349", 7),
            ("+39366", 7),
            ("+39380", 7),
            ("+39389", 7),
            ("+39392", 7),
        ),
        1500,
    ),
    ("IT", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "IT", (("+39800", 6),), 100),
    ("DE", "fixed"): (
        _FIXED,
        "DE",
        (("+4930", 8), ("+4989", 8), ("+4940", 8), ("+4969", 8), ("+49221", 7), ("+49711", 7)),
        800,
    ),
    ("DE", "mobile"): (
        _MOBILE,
        "DE",
        (("+49151", 8), ("+49160", 7), ("+49170", 7), ("+49171", 7), ("+49176", 8)),
        800,
    ),
    ("DE", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "DE", (("+49800", 7),), 100),
    ("GB", "fixed"): (
        _FIXED,
        "GB",
        (("+44207", 7), ("+44208", 7), ("+44161", 7), ("+44121", 7), ("+44131", 7), ("+44117", 7)),
        800,
    ),
    ("GB", "mobile"): (_MOBILE, "GB", (("+4477", 8), ("+4478", 8), ("+4479", 8), ("+4475", 8)), 800),
    ("GB", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "GB", (("+44800", 7),), 100),
    ("FR", "fixed"): (_FIXED, "FR", (("+331", 8), ("+332", 8), ("+333", 8), ("+334", 8), ("+335", 8)), 800),
    ("FR", "mobile"): (_MOBILE, "FR", (("+336", 8), ("+337", 8)), 800),
    ("FR", "toll_free"): (frozenset({PhoneNumberType.TOLL_FREE}), "FR", (("+33800", 6),), 100),
    ("ES", "fixed"): (_FIXED, "ES", (("+34911", 6), ("+34932", 6), ("+34963", 6)), 400),
    ("ES", "mobile"): (_MOBILE, "ES", (("+346", 8),), 400),
    ("US", "fixed"): (
        _FIXED,
        "US",
        (("+1212", 7), ("+1415", 7), ("+1312", 7), ("+1617", 7), ("+1305", 7)),
        400,
    ),
    ("US", "mobile"): (_MOBILE, "US", (("+1646", 7), ("+1917", 7), ("+1650", 7), ("+1773", 7)), 400),
    ("CH", "fixed"): (_FIXED, "CH", (("+4144", 7), ("+4122", 7), ("+4131", 7)), 400),
    ("CH", "mobile"): (_MOBILE, "CH", (("+4179", 7), ("+4178", 7), ("+4176", 7)), 400),
    # episode material
    ("XX", "premium"): (
        _ANY,
        None,
        (("+39899", 6), ("+39848", 6), ("+44909", 7), ("+44871", 7), ("+8816", 8), ("+8823", 9), ("+979", 9)),
        200,
    ),
    ("XX", "high_cost"): (
        frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE}),
        None,
        (("+23998", 5), ("+22507", 8), ("+535", 7)),
        200,
    ),
    ("XX", "new_country"): (_MOBILE, None, (("+62812", 8), ("+639", 9), ("+849", 8)), 900),
    # national premium-rate and shared-cost ranges of the customers' countries (varied episodes)
    ("IT", "premium"): (
        _PREMIUM,
        "IT",
        (("+39899", 6), ("+39895", 7), ("+39848", 6), ("+39840", 6)),
        200,
    ),
    ("GB", "premium"): (
        _PREMIUM,
        "GB",
        (("+44909", 7), ("+44908", 7), ("+44871", 7), ("+44870", 7), ("+44843", 7)),
        200,
    ),
    ("DE", "premium"): (_PREMIUM, "DE", (("+499001", 6), ("+499005", 6), ("+49180", 7)), 200),
    ("FR", "premium"): (_PREMIUM, "FR", (("+33899", 6), ("+33897", 6), ("+33836", 6), ("+33820", 6)), 200),
    # non-geographic high-risk ranges only (satellite, international networks, international premium)
    ("XX", "high_risk"): (_ANY, None, (("+8816", 8), ("+8823", 9), ("+979", 9)), 200),
}

_INTL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("DE", 0.2),
    ("FR", 0.15),
    ("GB", 0.2),
    ("ES", 0.15),
    ("US", 0.12),
    ("CH", 0.1),
    ("IT", 0.08),
)


@dataclass(frozen=True, slots=True)
class _Num:
    """A pool number: E.164 form, national dialling digits, region."""

    e164: str
    national: str
    region: str


def _parse_valid(e164: str, types: frozenset[int], region: str | None) -> _Num | None:
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    if types and phonenumbers.number_type(num) not in types:
        return None
    reg = phonenumbers.region_code_for_number(num) or "001"
    if region is not None and reg != region:
        return None
    national = "".join(
        ch for ch in phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL) if ch.isdigit()
    )
    return _Num(e164, national, reg)


def _random_digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


@cache
def _pool(region: str, kind: str) -> tuple[_Num, ...]:
    """Valid numbers of one (region, kind), built once per process from a fixed seed."""
    types, owner, prefixes, size = _POOL_SPECS[(region, kind)]
    rng = random.Random(f"tollguard-pool:{region}:{kind}")
    seen: set[str] = set()
    out: list[_Num] = []
    attempts = 0
    while len(out) < size:
        attempts += 1
        if attempts > size * 50:
            raise RuntimeError(f"number pool {region}/{kind}: too few valid numbers in its prefixes")
        prefix, n_digits = prefixes[len(out) % len(prefixes)] if attempts % 7 else rng.choice(prefixes)
        e164 = prefix + _random_digits(rng, n_digits)
        if e164 in seen:
            continue
        num = _parse_valid(e164, types, owner)
        if num is not None:
            seen.add(e164)
            out.append(num)
    return tuple(out)


def _dial(num: _Num, from_region: str) -> str:
    """Digits a PBX in ``from_region`` dials for ``num`` (national form, or ``00`` + E.164)."""
    if num.region == from_region:
        return num.national
    return "00" + num.e164[1:]


@cache
def _prefix_pool(prefix: str, size: int = 200) -> tuple[_Num, ...]:
    """Valid numbers of any type that start with an E.164 ``prefix`` (varied episodes: IRSF, pumping).

    Every digit count from 4 to 10 after the prefix is tried; the counts that give valid numbers
    are used. Built once per process from a fixed seed.
    """
    rng = random.Random(f"tollguard-prefix:{prefix}")
    seen: set[str] = set()
    out: list[_Num] = []
    lengths = [n for n in range(4, 11) if any(
        _parse_valid(prefix + _random_digits(rng, n), _ANY, None) is not None for _ in range(20))]
    if not lengths:
        raise RuntimeError(f"no valid numbers start with {prefix}")
    attempts = 0
    while len(out) < size and attempts < size * 50:
        attempts += 1
        e164 = prefix + _random_digits(rng, rng.choice(lengths))
        if e164 in seen:
            continue
        num = _parse_valid(e164, _ANY, None)
        if num is not None:
            seen.add(e164)
            out.append(num)
    return tuple(out)


@cache
def _region_pool(region: str, size: int = 60) -> tuple[_Num, ...]:
    """Valid fixed-line numbers of any ``region`` (libphonenumber's example number, last digits varied)."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE)
    if example is None:
        raise ValueError(f"libphonenumber has no fixed-line example for {region}")
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    rng = random.Random(f"tollguard-region:{region}")
    seen: set[str] = set()
    out: list[_Num] = []
    for attempt in range(size * 50):
        k = 4 if attempt < size * 25 else 6
        candidate = e164[:-k] + _random_digits(rng, k)
        if candidate in seen:
            continue
        num = _parse_valid(candidate, _FIXED, region)
        if num is not None:
            seen.add(candidate)
            out.append(num)
            if len(out) == size:
                break
    if not out:
        raise RuntimeError(f"no valid fixed-line numbers found for {region}")
    return tuple(out)


def _fresh_numbers(rng: random.Random, region: str, kinds: tuple[str, ...], n: int) -> list[_Num]:
    """``n`` distinct valid numbers of ``region`` drawn at random from the prefixes of its ``kinds`` pools.

    For campaigns larger than a pool (dialer lists, Wangiri sweeps): numbers are drawn from ``rng``.
    """
    specs = [_POOL_SPECS[(region, kind)] for kind in kinds]
    seen: set[str] = set()
    out: list[_Num] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 50 + 1000:
            raise RuntimeError(f"too few valid numbers for {region} {kinds}")
        types, owner, prefixes, _ = specs[rng.randrange(len(specs))]
        prefix, n_digits = prefixes[rng.randrange(len(prefixes))]
        e164 = prefix + _random_digits(rng, n_digits)
        if e164 in seen:
            continue
        num = _parse_valid(e164, types, owner)
        if num is not None:
            seen.add(e164)
            out.append(num)
    return out
