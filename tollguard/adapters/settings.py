"""Ingest settings: how raw switch CDRs are read and classified (DESIGN §3)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("default_country")
    @classmethod
    def _upper_country(cls, value: str) -> str:
        region = check_region(value.upper())
        assert region is not None  # a str in, a str out
        return region
