"""Write a rules file with every setting, its default and its documentation as YAML comments.

``rules/default.yaml`` is produced by ``tollguard rules template``: the comments come from
the same pydantic ``Field(description=...)`` the validator uses, so the analysts' file
and the code cannot disagree on names, ranges or meaning.
"""

from __future__ import annotations

import json
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tollguard.adapters.settings import IngestSettings
from tollguard.rules import Rules

_HEADER = """\
# tollguard rules file (DESIGN §6). Every threshold of every detector lives here.
# Check a file before deploying it:   tollguard rules check FILE
# A running worker refuses an invalid file and keeps its last good rules.
# Times are seconds of event time (the CDRs' own timestamps, UTC); bandwidth is kbit/s.
# Written by `tollguard rules template`; edit freely, the comments are the documentation.
"""

_CUSTOMERS_EXAMPLE = """\
# Per-customer settings: country (for number normalisation), DIDs with a bought capacity,
# the declared link bandwidth, allowlists and threshold overrides. Example:
#
#   cust-042:
#     name: Contact centre Milano
#     country: IT
#     dids:
#       "+390280001000": {capacity: 60}     # bought 60 simultaneous calls (clause 6.1)
#     link_kbps: 4000                       # declared access link, kbit/s (clause 3.1)
#     allow:
#       detectors: [autodialer]             # authorised to run outbound campaigns
#       destinations: ["+39899123456"]      # an agreed premium number
#     overrides:
#       arbitrage: {reward_critical_calls: 60} # a threshold for this customer only
#       spend: {mode: report_only}          # trial this customer's spend thresholds (nothing suspended)
#     mode: report_only                     # or trial every detector of this customer
"""

_MAPPINGS_EXAMPLE = """\
# A CSV layout no built-in format reads (Asterisk cdr_custom, CDR-Stats, a billing export), described
# here instead of converted: `--format NAME`, or `auto` when the file starts with the `columns` header row
# (without a header: `column_count` and 1-based positions). Missing fields are derived (end = start +
# duration, answer = end - billsec, the disposition from the answer). `tollguard inspect FILE --rules R`
# shows how each line is read. Example (CDR-Stats import CSV):
#
#   mappings:
#     - name: cdrstats
#       columns: [switch, cdr_source_type, callid, caller_id_number, caller_id_name, destination_number,
#                 dialcode, state, channel, starting_date, duration, billsec, progresssec, answersec, waitsec,
#                 hangup_cause_id, hangup_cause, direction, country_code, accountcode, buy_rate, buy_cost,
#                 sell_rate, sell_cost, extradata]
#       fields: {call_id: callid, caller: caller_id_number, callee: destination_number, customer_id: accountcode,
#                start: starting_date, duration_s: duration, billsec_s: billsec, hangup_cause: hangup_cause_id}
#       time_format: iso            # or epoch, epoch_ms, or a strptime pattern such as "%d/%m/%Y %H:%M:%S"
#       timezone: Europe/Madrid     # zone of its zone-less times (default: ingest.timezone)
#       direction: {column: direction, inbound: ["1"], outbound: ["2"]}
"""

#: Ingest settings the template leaves commented out: the user's data decides them (issue 12).
_CHOOSE_ME = {
    "timezone": "uncomment and set the zone your switches write in (replay --timezone does it for one run)",
    "default_country": "uncomment and set the country of customers without their own (or --country)",
}


def _value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple | list):
        value = list(value)
    if hasattr(value, "value"):
        value = value.value
    return json.dumps(value, ensure_ascii=False)


def _bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for kind, attr, sign in ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<")):
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
    return f" [{', '.join(parts)}]" if parts else ""


def _render(model: BaseModel, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        doc = (info.description or "") + _bounds(info)
        if isinstance(value, BaseModel):
            section_doc = type(value).__doc__
            if section_doc:
                lines.append(f"{pad}# {section_doc.strip().splitlines()[0]}")
            lines.append(f"{pad}{name}:")
            _render(value, indent + 1, lines)
            continue
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            lines.append(f"{pad}{name}:" + (f"  # {doc}" if doc else ""))
            for key, entry in value.items():
                body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in entry.model_dump(mode="json").items())
                lines.append(f"{pad}  {json.dumps(key)}: {{{body}}}")
            continue
        if isinstance(value, dict) and not value:
            if name == "customers":
                lines.extend(pad + line if line else line for line in _CUSTOMERS_EXAMPLE.splitlines())
            lines.append(f"{pad}{name}: {{}}" + (f"  # {doc}" if doc else ""))
            continue
        comment = f"  # {doc}" if doc else ""
        if name in _CHOOSE_ME and isinstance(model, IngestSettings):
            # commented out: a file copied from the template does not choose them silently (a run says
            # that it assumed the default until the analyst sets them)
            lines.append(f"{pad}# {name}: {_value(value)}{comment} -- {_CHOOSE_ME[name]}")
            continue
        if name == "mappings" and not value:
            lines.extend(pad + line if line else line for line in _MAPPINGS_EXAMPLE.splitlines())
        lines.append(f"{pad}{name}: {_value(value)}{comment}")


def render_rules_yaml(rules: Rules) -> str:
    """The rules as commented YAML (``Rules()`` of the registry's schema gives the built-in defaults)."""
    lines = [*_HEADER.splitlines(), "", 'version: "default-1"']
    body: list[str] = []
    _render(rules, 0, body)
    lines += [line for line in body if not line.startswith("version:")]
    return "\n".join(lines) + "\n"
