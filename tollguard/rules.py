"""Analyst-owned rules files (DESIGN §6): YAML validated by pydantic, with line numbers on errors.

The schema is composed from each detector's own thresholds model by
:func:`rules_schema`, called with the detector registry at the top of the layers
(``engine.registry``), so ``tollguard rules check`` and the detectors agree on what is
valid, a new detector plugs in without touching this module, and this module (the
domain layer) imports no detector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from tollguard.adapters.settings import IngestSettings
from tollguard.context import CustomerContext, DetectorParams, Mode
from tollguard.errors import RulesError
from tollguard.events import CoS
from tollguard.numbers import check_region, normalize
from tollguard.rates import RateTable

#: The analysts' default rules file in the repository; the same file is package data (the ``rules`` package),
#: which :func:`default_rules_path` finds wherever a command runs. ``tollguard rules template`` writes it.
DEFAULT_RULES_PATH = Path("rules/default.yaml")


def default_rules_path() -> Path:
    """The packaged ``rules/default.yaml`` (an installed package's copy, or the source tree's).

    Raises
    ------
    RulesError
        When the package data is missing (a broken install).
    """
    from importlib.resources import files

    try:
        path = Path(str(files("rules") / "default.yaml"))
    except ModuleNotFoundError:  # pragma: no cover - a broken install
        path = DEFAULT_RULES_PATH
    if not path.is_file():  # pragma: no cover - a broken install
        raise RulesError("the packaged default rules (rules/default.yaml) are missing: reinstall tollguard", "", None)
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EngineSettings(_Strict):
    """Event-time handling shared by replay and the stream."""

    allowed_lateness_s: float = Field(
        300, ge=0, le=86_400, description="how late (event time) a CDR may arrive and still be ordered in"
    )
    dedupe_horizon_s: float = Field(
        3600, ge=0, le=7 * 86_400, description="how long a processed call id is remembered to drop re-deliveries"
    )
    max_dedupe_calls: int = Field(
        200_000,
        ge=1_000,
        le=10_000_000,
        description="most call ids one customer's dedupe memory holds (about 100 bytes each); above it the "
        "oldest are forgotten first and counted in tollguard_state_cap_hits_total",
    )
    episode_gap_s: float = Field(
        3600, ge=0, le=30 * 86_400, description="an alert for the same scope within this gap is the same episode"
    )
    alert_expiry_s: dict[str, float] = Field(
        default_factory=dict,
        description="per detector: a warning-level alert closes after this much event time without new evidence "
        "(default: episode_gap_s; never shorter than the detector's window_s); a later warning is a new alert",
    )
    max_call_open_s: float = Field(
        4 * 3600, ge=60, le=7 * 86_400,
        description="a call known from its call events whose end never arrives is closed this long (event time) "
        "after its start, with the reason (4 h: above the 2-3 h session timers switches cut long calls at)",
    )  # fmt: skip
    cdr_wait_s: float = Field(
        300, ge=0, le=86_400,
        description="event time after a call's end event that its CDR is awaited; then the call's events make its "
        "record (a switch that sends only events, e.g. Kamailio acc), and a CDR arriving later is refused as late",
    )  # fmt: skip
    live_interval_s: float = Field(
        30, ge=1, le=3600,
        description="calls in progress: at most this much event time between two evaluations of minutes and cost "
        "accrued by calls still up (a call first seen up is evaluated at once)",
    )  # fmt: skip
    widen_to_account_after: int = Field(
        0,
        ge=0,
        le=1_000,
        description="suspend the whole account once this many narrow suspensions are active (0 = never)",
    )


class CosRules(_Strict):
    """Class of service per event type (clause 16.3: critical tickets get a 30-minute response)."""

    suspension: CoS = CoS.CRITICAL
    reactivation: CoS = CoS.CRITICAL
    alert: CoS = CoS.NORMAL
    compliance_notice: CoS = CoS.NORMAL
    capacity_increase: CoS = CoS.NORMAL
    critical_detectors: tuple[str, ...] = Field(
        (), description="detectors whose every event is critical (e.g. premium_destination alerts)"
    )


class DidRules(_Strict):
    """One DID of a customer."""

    capacity: int | None = Field(None, ge=1, le=100_000, description="bought simultaneous calls (default 20)")


class AllowRules(_Strict):
    """What a customer is authorised to do (never evidence of fraud)."""

    detectors: tuple[str, ...] = Field((), description="detectors not run for this customer, e.g. autodialer")
    destinations: tuple[str, ...] = Field((), description="E.164 numbers or prefixes the customer may call")


def _did_country(info: ValidationInfo) -> str:
    """The region a customer's DID keys are read in: its ``country``, else the file's default country.

    The default country comes from the validation context (``{"default_country": ...}``, which
    :func:`parse_rules` gives from ``ingest.default_country``), else the built-in default.
    """
    country = info.data.get("country")
    if isinstance(country, str) and country:
        return country
    context = info.context if isinstance(info.context, dict) else {}
    default = context.get("default_country")
    if isinstance(default, str):
        try:
            region = check_region(default.upper())
        except ValueError:
            region = None  # refused as ingest.default_country
        if region is not None:
            return region
    built_in: str = IngestSettings.model_fields["default_country"].default
    return built_in


def _did_e164(key: Any, country: str) -> str:
    """A DID key in E.164 (``'+39 02 1234 1111'`` -> ``'+390212341111'``).

    Raises
    ------
    ValueError
        When the key cannot be a phone number of (or dialled from) ``country``.
    """
    if not isinstance(key, str):
        raise ValueError(
            "a DID must be a quoted string such as '+390212345678' (YAML reads an unquoted number as an integer)"
        )
    e164 = normalize(key, country)
    if e164 is None:
        raise ValueError(
            f"not a phone number libphonenumber can normalise for {country}; "
            "write the DID in E.164, e.g. '+390212345678'"
        )
    return e164


def _did_key(key: Any, info: ValidationInfo) -> str:
    return _did_e164(key, _did_country(info))


#: A DID key of ``customers.<id>.dids``: normalised to E.164 for the customer's country, or refused.
DidKey = Annotated[str, BeforeValidator(_did_key)]


class CustomerRules(_Strict):
    """One customer's section: country, DIDs, capacity, link, allowlists, threshold overrides.

    DID keys are normalised to E.164 with the customer's country (libphonenumber, as the
    adapters normalise CDR numbers): ``'+39 02 1234 1111'``, ``'0039021234111'`` and, in IT,
    ``'02 1234 1111'`` are DIDs a CDR can match; a key that cannot be a number is refused.
    """

    _region = field_validator("country")(
        classmethod(lambda cls, v: check_region(v.upper() if isinstance(v, str) else v)))  # "it" is IT, as --country

    name: str | None = None
    country: str | None = Field(None, description="ISO 3166 region of the customer's numbering plan, e.g. IT")
    dids: dict[DidKey, DidRules] = Field(default_factory=dict)
    link_kbps: float | None = Field(None, gt=0, description="declared access-link bandwidth, kbit/s (clause 3.1)")
    allow: AllowRules = AllowRules()
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, description="detector -> thresholds")
    mode: Mode | None = Field(
        None, description="report_only (a trial) or enforce for every detector of this customer, above the "
        "detectors' own mode and below the customer's overrides; default: each detector's mode"
    )

    @field_validator("dids", mode="before")
    @classmethod
    def _one_key_per_did(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse two keys naming one DID (``'+390212341111'`` and ``'02 1234 1111'``): which capacity?"""
        if not isinstance(value, dict):
            return value
        country = _did_country(info)
        seen: dict[str, Any] = {}
        for key in value:
            try:
                e164 = _did_e164(key, country)
            except ValueError:
                continue  # refused with its own line by the key validator
            if e164 in seen:
                raise ValueError(f"DIDs {seen[e164]!r} and {key!r} are the same number {e164}: keep one")
            seen[e164] = key
        return value


class DetectorSpec(Protocol):
    """What the rules need of a detector class: its name and its thresholds model."""

    name: ClassVar[str]
    params_model: ClassVar[type[DetectorParams]]


class Rules(_Strict):
    """A whole rules file. Build it with :func:`load_rules`; ``version`` is set from the file hash.

    This base has no detector section; :func:`rules_schema` derives the class with one
    ``detectors.<name>`` section per registered detector (``engine.registry.Rules``).
    """

    version: str = "unversioned"
    ingest: IngestSettings = IngestSettings()
    engine: EngineSettings = EngineSettings()
    cos: CosRules = CosRules()
    detectors: BaseModel = _Strict()
    customers: dict[str, CustomerRules] = Field(default_factory=dict)
    rates: RateTable = RateTable()
    high_risk_prefixes: tuple[str, ...] = Field(
        ("+979", "+881", "+882", "+883"),
        description="IRSF / revenue-share destinations the operator maintains (E.164 prefixes)",
    )

    @classmethod
    def param_models(cls) -> dict[str, type[DetectorParams]]:
        """Detector name -> its thresholds model, as composed by :func:`rules_schema`."""
        section = cls.model_fields["detectors"].annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return {}
        return {name: f.annotation for name, f in section.model_fields.items()
                if isinstance(f.annotation, type) and issubclass(f.annotation, DetectorParams)}

    @model_validator(mode="after")
    def _expiries_valid(self) -> Rules:
        """An alert expiry names a known detector and is not shorter than that detector's window."""
        models = self.param_models()
        for det, expiry_s in self.engine.alert_expiry_s.items():
            if det not in models:
                raise ValueError(f"engine.alert_expiry_s.{det}: unknown detector; known: {sorted(models)}")
            window_s = getattr(getattr(self.detectors, det), "window_s", None)
            if window_s is not None and expiry_s < window_s:
                raise ValueError(
                    f"engine.alert_expiry_s.{det} ({expiry_s:g} s) is shorter than detectors.{det}.window_s "
                    f"({window_s:g} s): the alert would close while its evidence is still in the window and "
                    f"fire again for the same episode; use at least {window_s:g}"
                )
        return self

    @model_validator(mode="after")
    def _customers_valid(self) -> Rules:
        """Allowlisted detectors must exist; overrides applied to this file's thresholds must be valid."""
        models = self.param_models()
        for cid, cust in self.customers.items():
            unknown = sorted(set(cust.allow.detectors) - set(models))
            if unknown:
                raise ValueError(
                    f"customers.{cid}.allow.detectors: unknown detector(s) {unknown}; known: {sorted(models)}"
                )
            for det, values in cust.overrides.items():
                problem = override_problem(det, values, models, getattr(self.detectors, det, None))
                if problem is not None:
                    field, message = problem
                    raise ValueError(f"customers.{cid}.overrides.{det}{field}: {message}")
        return self

    @cached_property
    def did_owners(self) -> dict[str, str]:
        """E.164 DID -> the customer whose ``customers.<id>.dids`` lists it (the first, if two do)."""
        owners: dict[str, str] = {}
        for cid, cust in self.customers.items():
            for did in cust.dids:
                owners.setdefault(did, cid)
        return owners

    def owner_of(self, number: str) -> str | None:
        """The customer whose ``customers.<id>.dids`` lists ``number`` (E.164), else None.

        Used where a switch record names no account (a call event without an account code,
        DESIGN §3b; the CDR formats Kamailio acc, 3CX, CUCM and CSV mappings): the DID called
        or the CLI presented tells whose call it is. A bound method of one rules object, so a
        reload (a new object) gets its own table.
        A DID listed by two customers belongs to the first in the file.
        """
        return self.did_owners.get(number)

    def country_of(self, customer_id: str) -> str:
        """ISO region used to normalise a customer's numbers."""
        cust = self.customers.get(customer_id)
        return (cust.country if cust and cust.country else None) or self.ingest.default_country

    def context(self, customer_id: str) -> CustomerContext:
        """The customer's effective thresholds (overrides and allowlists applied).

        Cache the result per customer: it is rebuilt from the rules on each call.
        """
        cust = self.customers.get(customer_id) or CustomerRules()
        params: dict[str, DetectorParams] = {}
        for name, model in self.param_models().items():
            base: DetectorParams = getattr(self.detectors, name)
            # most specific wins: the detector's section, the customer's mode, its override of the detector
            values = {**base.model_dump(), **({"mode": cust.mode} if cust.mode else {}),
                      **cust.overrides.get(name, {})}
            if name in cust.allow.detectors:
                values["enabled"] = False
            params[name] = model.model_validate(values)
        return CustomerContext(
            customer_id=customer_id,
            country=self.country_of(customer_id),
            params=params,
            did_capacity={did: r.capacity for did, r in cust.dids.items() if r.capacity is not None},
            link_kbps=cust.link_kbps,
            allow_destinations=cust.allow.destinations,
            home_dids=frozenset(cust.dids),
            high_risk_prefixes=self.high_risk_prefixes,
            rates=self.rates,
        )


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML 1.2 forbids it; PyYAML keeps
    the last silently, so an analyst's threshold could vanish without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in this mapping (first on line {first})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def rules_schema(detectors: Iterable[type[DetectorSpec]]) -> type[Rules]:
    """The :class:`Rules` class whose ``detectors`` section has one thresholds model per detector.

    Parameters
    ----------
    detectors : iterable of detector classes
        Each with ``name`` and ``params_model`` (the registry, in run order).
    """
    section = create_model(  # type: ignore[call-overload]
        "DetectorsConfig",
        __config__=ConfigDict(frozen=True, extra="forbid"),
        **{d.name: (d.params_model, d.params_model()) for d in detectors},
    )
    schema: type[Rules] = create_model(
        "Rules", __base__=Rules, __module__=Rules.__module__, detectors=(section, section())
    )
    return schema


def parse_rules(
    text: str, path: str = "<rules>", schema: type[Rules] = Rules, ingest: dict[str, Any] | None = None
) -> Rules:
    """Validate rules YAML text against ``schema`` (from :func:`rules_schema`).

    ``ingest`` overrides keys of the file's ``ingest`` section (the command line's
    ``--timezone`` / ``--country``: ``{"timezone": "Europe/Rome", "default_country": "DE"}``)
    before validation, so DID keys are read in the overriding country; they change
    ``version`` too (the digest covers them).

    Raises
    ------
    RulesError
        With the line and dotted field of the first fault: bad YAML, an unknown key,
        a value out of its range.
    """
    try:
        root = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader) or {}  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as exc:
        line, message = yaml_fault(exc, text)
        raise RulesError(f"not valid YAML: {message}", "", line, path) from None
    if not isinstance(data, dict):
        raise RulesError("the rules file must be a YAML mapping", "", 1, path)
    _check_overrides(data, root, path, schema.param_models())
    if ingest:
        section = data.get("ingest")
        data["ingest"] = {**(section if isinstance(section, dict) else {}), **ingest}
        text += "\n# overrides: " + repr(sorted(ingest.items()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    data["version"] = f"{data.get('version', 'unversioned')}+{digest}"
    ingest = data.get("ingest")
    default_country = ingest.get("default_country") if isinstance(ingest, dict) else None
    try:
        return schema.model_validate(data, context={"default_country": default_country})
    except ValidationError as exc:
        err = exc.errors()[0]
        # "[key]" follows the key of a mapping whose key is at fault (a DID): the field ends at that key
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]")))
        field = ".".join(str(p) for p in loc)
        got = err.get("input")
        got_text = _got(err["msg"], got)
        raise RulesError(f"{err['msg']}{got_text}", field, _node_line(root, loc), path) from None


def _unbalanced_quote_line(lines: list[str], first: int, last: int) -> int | None:
    """The first line in ``first..last`` (1-based) with an odd number of ``"`` or ``'`` before any comment."""
    for number in range(first, min(last, len(lines)) + 1):
        code = lines[number - 1].split(" #", 1)[0]
        if code.count('"') % 2 or code.replace("''", "").count("'") % 2:
            return number
    return None


def _block_start(lines: list[str], line: int) -> str | None:
    """"N where its block's keys start (under line P)": the first key of the block ``line`` (1-based)
    would join by its indentation, when it is indented differently; else None.

    The block opens after the nearest line above indented less than ``line``; when its first key is
    indented differently, one of the two lines is at fault.
    """

    def indent(n: int) -> int:
        return len(lines[n - 1]) - len(lines[n - 1].lstrip(" "))

    def content(n: int) -> bool:
        return bool(lines[n - 1].strip()) and not lines[n - 1].lstrip().startswith("#")

    if line > len(lines):
        return None
    parent = next((n for n in range(line - 1, 0, -1) if content(n) and indent(n) < indent(line)), 0)
    first = next((n for n in range(parent + 1, line) if content(n)), None)
    if first is None or indent(first) == indent(line):
        return None
    return f"{first} where its block's keys start" + (f" (under line {parent})" if parent else "")


def yaml_fault(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """(1-based line of the fault, message) of a YAML syntax error, where the writer has to look.

    PyYAML marks where it noticed the problem, which is often after the fault: an unclosed
    quote is noticed where the quoted text ends (lines later), a missing ``:`` on the next line,
    a line indented too little on the line after it. This points at the line that starts the
    quoted scalar, the simple key, or names both lines for an indentation fault.
    """
    problem = str(getattr(exc, "problem", None) or exc)
    context = str(getattr(exc, "context", None) or "")
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    lines = text.splitlines()
    if context_mark is not None and context in ("while scanning a quoted scalar", "while scanning a simple key"):
        return context_mark.line + 1, f"{problem} ({context} that starts on this line)"
    if line is not None and "found '<scalar>'" in problem and context_mark is not None:
        quoted = _unbalanced_quote_line(lines, context_mark.line + 1, line)
        if quoted is not None and quoted != line:
            return quoted, f"a quote opened on this line is closed only on line {line} ({problem})"
    before = None
    if line is not None:
        before = next((n for n in range(line - 1, 0, -1)
                       if lines[n - 1].strip() and not lines[n - 1].lstrip().startswith("#")), None)
    if line is not None and before is not None and "<block mapping start>" in problem:
        block = _block_start(lines, line)
        also = f", and of line {block}" if block is not None and not block.startswith(f"{before} ") else ""
        return line, f"{problem}: check the indentation of this line, of line {before} before it{also}"
    if before is not None and problem == "mapping values are not allowed here":
        code = lines[before - 1].split(" #", 1)[0].rstrip()
        if ":" not in code and not code.lstrip().startswith("-"):
            return before, f"no ':' after the key on this line, so line {line} reads as its continuation ({problem})"
    return line, problem


def _got(message: str, got: Any) -> str:
    """`` (got X)`` after an error message, unless the message already says what it got."""
    if isinstance(got, dict | list) or " Got " in f" {message}":
        return ""
    return f" (got {got!r})"


def override_problem(
    det: str, values: Any, models: dict[str, type[DetectorParams]], base: DetectorParams | None = None
) -> tuple[str, str] | None:
    """The first fault of one customer's ``overrides.<det>`` block, or None when it is valid.

    ``models`` maps detector names to thresholds models (:meth:`Rules.param_models`);
    ``base`` holds the thresholds the overrides apply to (the detector's defaults when None).
    Returns ``(".field" or "", message)``.
    """
    if det not in models:
        return "", f"unknown detector {det!r}; known: {', '.join(sorted(models))}"
    if not isinstance(values, dict):
        return "", "must be a mapping of thresholds"
    try:
        models[det].model_validate({**(base or models[det]()).model_dump(), **values})
    except ValidationError as exc:
        err = exc.errors()[0]
        got = err.get("input")
        got_text = _got(err["msg"], got)
        field = "".join(f".{part}" for part in err["loc"])
        return field, f"{err['msg']}{got_text}"
    return None


def _file_params(data: dict[str, Any], model: type[DetectorParams] | None, det: str) -> DetectorParams | None:
    """The file's own thresholds of ``det`` when they are valid (else None: defaults)."""
    section = data.get("detectors")
    if model is None or not isinstance(section, dict) or not isinstance(section.get(det), dict):
        return None
    try:
        return model.model_validate({**model().model_dump(), **section[det]})
    except ValidationError:
        return None


def _check_overrides(
    data: dict[str, Any], root: yaml.Node | None, path: str, models: dict[str, type[DetectorParams]]
) -> None:
    """Validate ``customers.*.overrides`` before the whole file, to name the fault's line and full field."""
    customers = data.get("customers")
    if not isinstance(customers, dict):
        return
    for cid, cust in customers.items():
        overrides = cust.get("overrides") if isinstance(cust, dict) else None
        if not isinstance(overrides, dict):
            continue
        for det, values in overrides.items():
            problem = override_problem(det, values, models, _file_params(data, models.get(det), det))
            if problem is not None:
                field, message = problem
                loc = ("customers", cid, "overrides", det, *field.split(".")[1:])
                raise RulesError(message, ".".join(map(str, loc)), _node_line(root, loc), path)


def load_rules(
    path: str | Path | None = None, schema: type[Rules] = Rules, ingest: dict[str, Any] | None = None
) -> Rules:
    """Load and validate a rules file (the packaged ``rules/default.yaml`` when ``path`` is None).

    ``schema`` is the composed class (:func:`rules_schema`); the top layer passes the registry's.
    ``ingest`` overrides keys of the ``ingest`` section (see :func:`parse_rules`).

    Raises
    ------
    RulesError
        The file is missing, unreadable or invalid (with line and field).
    """
    file = Path(path) if path is not None else default_rules_path()
    if file.is_dir():
        raise RulesError("is a directory, not a rules file", "", None, str(file))
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read rules file: {exc}", "", None, str(file)) from None
    return parse_rules(text, str(file), schema, ingest)
