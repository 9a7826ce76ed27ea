"""What the rules say about one customer, in the form the detectors read (domain layer).

:class:`DetectorParams` is the base of every detector's thresholds model and
:class:`CustomerContext` the resolved rules of one customer; both live here, below the
detectors, so that the rules schema (:mod:`tollguard.rules`) can build contexts without
importing any detector. Also the event-time helpers every layer shares (UTC epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from tollguard.rates import RateTable

#: pydantic's error types for a number outside a field's ``ge`` / ``gt`` / ``le`` / ``lt`` bounds.
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))

#: How a detector's decisions act: ``enforce`` (suspensions suspend) or ``report_only`` (trial: every
#: event is marked ``report_only``, a suspension is emitted as an alert and no call is refused).
Mode = Literal["enforce", "report_only"]
REPORT_ONLY: Mode = "report_only"


class DetectorParams(BaseModel):
    """Base of every detector's thresholds: frozen, unknown keys refused.

    Each field carries its default, its allowed range and, in its description,
    its source (contract clause, standard or measured figure). A value outside the
    range is refused with one kind of message, naming the field, the allowed range
    and the value (the error's ``msg``; its ``type``, ``loc`` and ``input`` are pydantic's).

    Examples
    --------
    >>> class Demo(DetectorParams):
    ...     window_s: float = Field(3600, ge=60, le=86_400)
    >>> try:
    ...     Demo(window_s=10)
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"])
    The 'window_s' parameter of Demo must be >= 60 and <= 86400. Got 10 instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: (warning field, critical field) pairs: the warning must not be above the critical level,
    #: so the alert fires before the suspension. Each detector lists its own.
    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()

    enabled: bool = Field(True, description="run this detector (a customer allowlist can turn it off)")
    mode: Mode = Field(
        "enforce",
        description="enforce, or report_only (a trial: events marked report_only, a suspension sent as an alert)",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _uniform_range_errors(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Reword pydantic's range errors ("Input should be greater than or equal to 60") to name all three."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            if not any(err["type"] in _RANGE_ERRORS for err in errors):
                raise
            raise ValidationError.from_exception_data(exc.title, [cls._reworded(err) for err in errors]) from None

    @classmethod
    def _reworded(cls, err: Any) -> InitErrorDetails:
        """One error of :meth:`_uniform_range_errors`: a range error reworded, any other kept as it was."""
        loc, ctx = err["loc"], err.get("ctx") or {}
        allowed = cls._allowed_range(loc[0]) if err["type"] in _RANGE_ERRORS and len(loc) == 1 else ""
        if not allowed:
            return {"type": PydanticCustomError(err["type"], err["msg"]), "loc": loc, "input": err["input"]}
        message = "The '{field}' parameter of {model} must be {allowed}. Got {got} instead."
        context = {**ctx, "field": loc[0], "model": cls.__name__, "allowed": allowed, "got": repr(err["input"])}
        return {"type": PydanticCustomError(err["type"], message, context), "loc": loc, "input": err["input"]}

    @classmethod
    def _allowed_range(cls, name: Any) -> str:
        """``">= 60 and <= 86400"`` from a field's bounds ("" for no field or no bound)."""
        info = cls.model_fields.get(name) if isinstance(name, str) else None
        parts = [
            f"{op} {_number(getattr(m, attr))}"
            for m in (info.metadata if info else ())
            for attr, op in _BOUNDS
            if getattr(m, attr, None) is not None
        ]
        return " and ".join(parts)

    @model_validator(mode="after")
    def _levels_ordered(self) -> DetectorParams:
        for warn, crit in self.level_pairs:
            if getattr(self, warn) > getattr(self, crit):
                raise ValueError(
                    f"{crit} ({getattr(self, crit)}) must be >= {warn} ({getattr(self, warn)}): "
                    "the warning fires before the suspension"
                )
        return self


def _number(value: Any) -> str:
    """A bound as people write it: ``60``, ``0.05``, ``604800`` (no ``60.0``, no ``6.048e+05``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class CustomerContext:
    """What the rules say about one customer, resolved once and cached.

    Attributes
    ----------
    customer_id : str
    country : str
        ISO 3166 region used to normalise and type numbers ("IT").
    params : Mapping[str, DetectorParams]
        Effective thresholds per detector name, customer overrides applied.
    did_capacity : Mapping[str, int]
        Bought simultaneous-call capacity per E.164 DID; others get the ``did_concurrency``
        detector's ``default_capacity`` (contract clause 6.1: at least 20).
    link_kbps : float or None
        Known access-link bandwidth in kbit/s, when the customer declared it.
    allow_destinations : tuple of str
        E.164 numbers or prefixes the customer is authorised to call (never premium evidence).
    home_dids : frozenset of str
        The customer's own DIDs, where the rules list them.
    high_risk_prefixes : tuple of str
        E.164 prefixes of IRSF / revenue-share ranges the operator maintains (rules file).
    rates : RateTable
        The rules' rate table (prices by E.164 prefix, one currency).
    """

    customer_id: str
    country: str = "IT"
    params: Mapping[str, DetectorParams] = field(default_factory=dict)
    did_capacity: Mapping[str, int] = field(default_factory=dict)
    link_kbps: float | None = None
    allow_destinations: tuple[str, ...] = ()
    home_dids: frozenset[str] = frozenset()
    high_risk_prefixes: tuple[str, ...] = ()
    rates: RateTable = field(default_factory=lambda: RateTable(prefixes={}))

    def capacity_of(self, did: str, default: int = 20) -> int:
        """Simultaneous-call capacity of ``did``: bought in the rules, else ``default`` (clause 6.1: 20)."""
        return self.did_capacity.get(did, default)


def epoch(dt: datetime) -> float:
    """UTC epoch seconds of a tz-aware datetime."""
    return dt.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Tz-aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def iso(seconds: float) -> str:
    """ISO 8601 UTC text of epoch seconds, e.g. ``2026-01-05T09:00:00Z``."""
    return from_epoch(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
