"""The rate table: what traffic costs, by E.164 prefix (DESIGN §6).

One currency per rules file; a rate is a cost per answered minute (per-second billing)
plus a cost per answered call; the longest matching prefix wins. Detectors weigh traffic
by money with it (``estimated_cost`` in every fraud event's evidence, spend thresholds per
customer and window, the high-cost check), and the NOC reads the figure in the event.

The shipped table (:data:`EXAMPLE_RATES`) covers the premium and high-risk ranges of the
default rules with illustrative figures only: operators load their carrier's rates.
"""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")


class Rate(BaseModel):
    """The price of calls to one E.164 prefix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_min: float = Field(ge=0, le=10_000, description="cost per answered minute (billed per second)")
    per_call: float = Field(0.0, ge=0, le=10_000, description="cost per answered call (set-up charge)")
    note: str = Field("", description="what the range is")


#: Illustrative rates (EUR) for the premium and high-risk ranges of the default rules, so that
#: events carry an order of magnitude out of the box. Sources: revenue-share (IPRN) payouts of
#: $0.0001-$2.33/min, $0.094 on average (TransNexus study, 2015); national premium tariffs up to
#: about EUR 2/min plus a set-up charge (Italian 89x, UK 09x consumer tariffs). Load your carrier's.
EXAMPLE_RATES: dict[str, Rate] = {
    "+39899": Rate(per_min=1.50, per_call=0.50, note="IT premium 899"),
    "+39892": Rate(per_min=1.00, per_call=0.30, note="IT premium 892"),
    "+39895": Rate(per_min=2.00, per_call=0.50, note="IT premium 895 (adult)"),
    "+39894": Rate(per_min=1.50, per_call=0.30, note="IT premium 894"),
    "+3984": Rate(per_min=0.15, note="IT shared cost 84x"),
    "+44909": Rate(per_min=3.00, note="UK premium 0909 (adult)"),
    "+4490": Rate(per_min=2.00, note="UK premium 090"),
    "+4491": Rate(per_min=2.00, note="UK premium 091"),
    "+4487": Rate(per_min=0.15, note="UK shared cost 087"),
    "+4470": Rate(per_min=0.60, note="UK personal numbers 070"),
    "+979": Rate(per_min=2.00, per_call=0.50, note="international premium rate service"),
    "+881": Rate(per_min=5.00, note="global mobile satellite"),
    "+882": Rate(per_min=3.00, note="international networks"),
    "+883": Rate(per_min=2.50, note="international networks"),
    "+239": Rate(per_min=1.20, note="Sao Tome and Principe (IRSF target)"),
    "+225": Rate(per_min=0.60, note="Cote d'Ivoire (IRSF target)"),
    "+232": Rate(per_min=0.90, note="Sierra Leone (IRSF target)"),
    "+221": Rate(per_min=0.50, note="Senegal (IRSF target)"),
    "+252": Rate(per_min=1.50, note="Somalia (IRSF target)"),
    "+260": Rate(per_min=0.50, note="Zambia (IRSF target)"),
    "+263": Rate(per_min=0.70, note="Zimbabwe (IRSF target)"),
    "+269": Rate(per_min=1.00, note="Comoros (IRSF target)"),
    "+371": Rate(per_min=0.30, note="Latvia (IRSF target)"),
    "+372": Rate(per_min=0.30, note="Estonia (IRSF target)"),
    "+375": Rate(per_min=0.40, note="Belarus (IRSF target)"),
    "+53": Rate(per_min=1.00, note="Cuba (IRSF target)"),
    "+675": Rate(per_min=1.80, note="Papua New Guinea (IRSF target)"),
    "+677": Rate(per_min=2.00, note="Solomon Islands (IRSF target)"),
    "+678": Rate(per_min=1.80, note="Vanuatu (IRSF target)"),
    "+685": Rate(per_min=1.20, note="Samoa (IRSF target)"),
    "+686": Rate(per_min=1.50, note="Kiribati (IRSF target)"),
    "+688": Rate(per_min=2.00, note="Tuvalu (IRSF target)"),
    "+690": Rate(per_min=2.20, note="Tokelau (IRSF target)"),
}


class RateTable(BaseModel):
    """Rate table (DESIGN §6): cost by E.164 prefix in one currency, longest prefix wins; load your carrier's.

    E.164 prefix → :class:`Rate`.

    Examples
    --------
    >>> table = RateTable(currency="EUR", prefixes={"+39": Rate(per_min=0.02), "+39899": Rate(per_min=1.5,
    ...                                               per_call=0.5)})
    >>> table.cost("+39899123456", billsec_s=120)   # 0.5 + 1.5 * 2 min
    3.5
    >>> table.cost("+390612345678", billsec_s=30)
    0.01
    >>> table.cost("+44207946000", billsec_s=60) is None   # not priced
    True
    >>> table.cost("+39899123456", billsec_s=0)            # unanswered: free
    0.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field("EUR", description="ISO 4217 code of every figure in this table")
    prefixes: dict[str, Rate] = Field(
        default_factory=lambda: dict(EXAMPLE_RATES),
        description="E.164 prefix -> per_min / per_call; illustrative figures: load your carrier's rates",
    )

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, code: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError(f"currency must be an ISO 4217 code of three capital letters, e.g. EUR; got {code!r}")
        return code

    @field_validator("prefixes")
    @classmethod
    def _e164_prefixes(cls, prefixes: dict[str, Rate]) -> dict[str, Rate]:
        bad = sorted(p for p in prefixes if not _PREFIX.match(p))
        if bad:
            raise ValueError(f"prefixes must be E.164 prefixes ('+' and 1-15 digits, e.g. '+39899'); got {bad}")
        return prefixes

    @cached_property
    def _lengths(self) -> tuple[int, ...]:
        return tuple(sorted({len(p) for p in self.prefixes}, reverse=True))

    def rate_of(self, number: str) -> tuple[str, Rate] | None:
        """The longest prefix of ``number`` (E.164) in the table with its rate, or None."""
        prefixes = self.prefixes
        for length in self._lengths:
            rate = prefixes.get(number[:length])
            if rate is not None:
                return number[:length], rate
        return None

    def cost(self, number: str, billsec_s: float) -> float | None:
        """Estimated cost of one call to ``number`` answered for ``billsec_s`` seconds; None when not priced.

        An unanswered call (``billsec_s`` 0) costs nothing. Rounded to 1/10,000 of the currency.
        """
        found = self.rate_of(number)
        if found is None:
            return None
        rate = found[1]
        if billsec_s <= 0:
            return 0.0
        return round(rate.per_call + rate.per_min * billsec_s / 60.0, 4)
