"""Ingest settings: how raw switch CDRs are read and classified (DESIGN §3)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollguard.numbers import check_region

DEFAULT_ASTERISK_INBOUND = (
    "from-trunk*",
    "from-pstn*",
    "from-did*",
    "public",
    "ext-did*",
    "*-pstn",
    "*-trunk",
    "*inbound*",
)
DEFAULT_ASTERISK_OUTBOUND = ("from-internal*", "outbound*", "*-outbound", "default")
DEFAULT_FREESWITCH_INBOUND = ("public",)
#: Names of the built-in formats; a mapping may not take one.
BUILTIN_FORMATS = ("auto", "asterisk-csv", "freeswitch-csv", "freeswitch-json", "jsonl", "kamailio-acc", "3cx", "cucm")
#: Canonical fields a CSV mapping can fill (DESIGN §3), and the ones it must.
MAPPABLE_FIELDS = (
    "call_id", "customer_id", "caller", "callee", "did", "start", "answer", "end", "duration_s", "billsec_s",
    "disposition", "hangup_cause", "direction", "source_ip", "user_agent", "codec",
)  # fmt: skip
REQUIRED_FIELDS = ("caller", "callee", "start")


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


class DirectionRule(BaseModel):
    """How a mapped row's direction is told: a column's value matched against globs.

    Without ``column``, or when its value matches no glob: ``inbound`` when the callee is a
    DID the rules give a customer, else outbound or internal by the callee (as the switch
    formats: an external callee makes the call outbound).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str | int | None = Field(None, description="column (name or 1-based position) telling the direction")
    inbound: tuple[str, ...] = Field((), description="fnmatch globs of that column's values meaning inbound")
    outbound: tuple[str, ...] = Field((), description="globs meaning outbound")
    internal: tuple[str, ...] = Field((), description="globs meaning internal")


class CsvMapping(BaseModel):
    """A declarative CSV layout: which column holds which canonical field (``ingest.mappings``).

    Columns are named by ``columns`` (the header row's names, in order: a file starting with
    that header row is recognised by ``--format auto``, the header skipped) or, without names,
    by 1-based position in rows of ``column_count`` columns. Missing fields are derived: ``end``
    = start + duration, ``answer`` = end - billsec, ``duration_s`` = end - start, the
    disposition from the answer, billsec and hangup cause; a row without ``call_id`` gets a
    hash of itself; without ``customer_id`` the customer owning the DID or CLI in the rules,
    else ``ingest.default_customer_id``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,39}$", description="the --format name of this layout")
    columns: tuple[str, ...] = Field((), description="column names in order, as the header row writes them")
    column_count: int | None = Field(None, ge=1, le=1000, description="columns of a row (without names)")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field separator")
    fields: dict[str, str | int] = Field(description="canonical field -> column name, or 1-based position")
    time_format: str = Field(
        "iso", description="'iso' (also YYYY/MM/DD), 'epoch' (seconds, UTC), 'epoch_ms', or a strptime pattern"
    )
    timezone: str | None = Field(None, description="IANA zone of this layout's zone-less times (default: ingest)")
    direction: DirectionRule = DirectionRule()

    _zone = field_validator("timezone")(classmethod(lambda cls, v: v if v is None else _known_zone(v)))

    @model_validator(mode="after")
    def _consistent(self) -> CsvMapping:
        if self.name in BUILTIN_FORMATS:
            raise ValueError(f"name {self.name!r} is a built-in format")
        if bool(self.columns) == (self.column_count is not None):
            raise ValueError("give either columns (the header's names) or column_count (positions), not both")
        unknown = sorted(set(self.fields) - set(MAPPABLE_FIELDS))
        if unknown:
            raise ValueError(f"fields: unknown canonical field(s) {unknown}; known: {', '.join(MAPPABLE_FIELDS)}")
        missing = [f for f in REQUIRED_FIELDS if f not in self.fields]
        if missing or not ({"end", "duration_s"} & set(self.fields)):
            raise ValueError(f"fields: {', '.join(missing) or 'end or duration_s'} must be mapped "
                             "(caller, callee, start, and end or duration_s)")
        refs: list[tuple[str, str | int]] = list(self.fields.items())
        if self.direction.column is not None:
            refs.append(("direction.column", self.direction.column))
        for what, ref in refs:
            self.position(ref, what)
        return self

    @property
    def width(self) -> int:
        """Columns of a row."""
        return len(self.columns) or (self.column_count or 0)

    def position(self, ref: str | int, what: str = "column") -> int:
        """0-based index of a column given by name or 1-based position.

        Raises
        ------
        ValueError
            A name not in ``columns``, or a position outside the row.
        """
        if isinstance(ref, int):
            if not 1 <= ref <= self.width:
                raise ValueError(f"{what}: column position {ref} outside 1..{self.width}")
            return ref - 1
        if ref not in self.columns:
            raise ValueError(f"{what}: column {ref!r} is not one of columns")
        return self.columns.index(ref)


class IngestSettings(BaseModel):
    """How the adapters read switch CDRs: time zone, numbering and direction rules.

    Direction of a row: a dial-plan context matching an *outbound* glob is never
    inbound; otherwise a context matching an *inbound* glob makes the call
    ``inbound``. Any other call is ``outbound`` when the callee is external (it
    normalises to E.164, it is longer than ``extension_max_digits`` digits, or it is
    a short number of the customer's country: an emergency number or a valid short
    code in libphonenumber's short-number data, such as 112, 113, 118 or 1200 in IT
    and 999 or 111 in GB) and ``internal`` otherwise. Short-code ranges overlap PBX
    extension ranges (IT and FR list 1000-1099 as short codes, FreeSWITCH's default
    users are 1000-1019): with ``access_codes`` configured a non-emergency short code
    is external only after the access code, and a callee matching ``extensions`` is
    an extension whatever the short-number data says (emergency numbers are always
    external). Globs are ``fnmatch`` patterns, matched case-insensitively.

    The DID (the customer's number in the call) is the callee of an inbound call,
    the caller (presented CLI) of an outbound call when that is a public number
    (an extension such as ``201`` is not: None), and None for an internal call.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(
        default="UTC",
        description=(
            "IANA time zone of naive timestamps, in every format (Asterisk writes local time unless "
            "cdr.conf sets usegmtime; FreeSWITCH *_stamp fields are local). Epoch and offset-carrying "
            "timestamps are not affected."
        ),
    )
    default_country: str = Field(
        default="IT",
        min_length=2,
        max_length=2,
        description="ISO 3166 region used to normalise numbers when no per-customer country is known",
    )
    default_customer_id: str = Field(
        default="default",
        min_length=1,
        description="customer_id given to a row whose accountcode is empty",
    )
    access_codes: tuple[str, ...] = Field(
        default=(),
        description="PBX outside-line prefixes (e.g. '0', '9') stripped before normalising a dialled number",
    )
    asterisk_inbound_contexts: tuple[str, ...] = Field(
        default=DEFAULT_ASTERISK_INBOUND,
        description="fnmatch globs of Asterisk dcontexts where calls from the public network land (inbound)",
    )
    asterisk_outbound_contexts: tuple[str, ...] = Field(
        default=DEFAULT_ASTERISK_OUTBOUND,
        description=(
            "fnmatch globs of Asterisk dcontexts used by the customer's own phones; such a call is never "
            "inbound (this wins over an inbound glob, e.g. 'outbound-trunk'); outbound vs internal follows "
            "the callee"
        ),
    )
    freeswitch_inbound_contexts: tuple[str, ...] = Field(
        default=DEFAULT_FREESWITCH_INBOUND,
        description="fnmatch globs of FreeSWITCH dialplan contexts where calls from the public network land",
    )
    extensions: tuple[str, ...] = Field(
        default=(),
        description=(
            "fnmatch globs of the PBXs' internal numbers where they overlap the country's short codes "
            "(e.g. '10??' for FreeSWITCH's default users 1000-1019): a callee matching one is an extension "
            "(internal call) even where libphonenumber lists it as a short code; emergency numbers are always "
            "external"
        ),
    )
    extension_max_digits: int = Field(
        default=6,
        ge=1,
        le=15,
        description=(
            "a callee of at most this many digits that does not normalise to E.164 is an extension "
            "(internal call); a longer one is treated as an external destination"
        ),
    )

    kamailio_db_columns: tuple[str, ...] = Field(
        default=(),
        description=(
            "names of the db_extra columns after 'time' in Kamailio acc table rows without a header row "
            "(e.g. src_user, src_domain, src_ip, dst_ouser, dst_user, dst_domain); empty: 6 extra columns are "
            "read in kamailio.cfg's default order, 10 in dSIPRouter's"
        ),
    )
    mappings: tuple[CsvMapping, ...] = Field(
        default=(),
        description="declarative CSV layouts (name, columns, fields, time format and zone, direction rule)",
    )

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _known_zone(v)))

    @field_validator("mappings")
    @classmethod
    def _unique_names(cls, value: tuple[CsvMapping, ...]) -> tuple[CsvMapping, ...]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mapping name(s) {dupes} used twice")
        return value

    def mapping(self, name: str) -> CsvMapping | None:
        """The mapping called ``name``, or None."""
        return next((m for m in self.mappings if m.name == name), None)

    def formats(self) -> tuple[str, ...]:
        """Every --format name these settings accept: the built-in ones and the mappings'."""
        return BUILTIN_FORMATS + tuple(m.name for m in self.mappings)

    @field_validator("default_country")
    @classmethod
    def _upper_country(cls, value: str) -> str:
        region = check_region(value.upper())
        assert region is not None  # a str in, a str out
        return region
