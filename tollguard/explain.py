"""What the rules say about one customer, and where each value comes from (``tollguard rules explain``).

A customer's effective thresholds are, most specific last: the rules file's ``detectors``
section (or the built-in defaults where the file is silent), the customer's ``mode``
(``report_only`` trials every detector, ``enforce`` ends a detector-wide trial for it), the
customer's ``overrides`` of one detector, and its allowlist (``allow.detectors`` turns a detector
off). :meth:`tollguard.rules.Rules.context` applies them; :func:`explain` says, value by value,
which of them decided.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

from tollguard.rules import CustomerRules, Rules

#: Where an effective value comes from.
DEFAULT, BUILT_IN, OVERRIDE, ALLOWLIST, CUSTOMER_MODE = "default", "built-in default", "override", "allowlist", \
    "customer mode"


def _json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return getattr(value, "value", value)


def explain(rules: Rules, customer_id: str) -> dict[str, Any]:
    """The effective rules of ``customer_id`` with the source of every value (JSON-ready).

    Returns
    -------
    dict
        ``customer_id``, ``in_rules`` (whether the file has a section for it), ``name``,
        ``country`` and ``country_source`` (``customer`` or ``ingest.default_country``), ``mode``,
        ``link_kbps``, ``dids`` (E.164 -> capacity and its source), ``allow_destinations``,
        ``detectors`` (name -> field -> ``{"value", "source"}``; source ``default`` (the file's
        ``detectors`` section), ``built-in default`` (the file is silent), ``override``,
        ``allowlist`` or ``customer mode``), ``rates`` (currency, and every rate-table entry with
        the tags ``national`` (in the customer's country code), ``high_risk`` (under one of the
        rules' high-risk prefixes) and ``allowlisted`` (an allowed destination falls under it or
        it under one)).
    """
    cust = rules.customers.get(customer_id)
    section = cust or CustomerRules()
    ctx = rules.context(customer_id)
    detectors: dict[str, dict[str, dict[str, Any]]] = {}
    for name, params in ctx.params.items():
        in_file = getattr(rules.detectors, name)
        overrides = section.overrides.get(name, {})
        rows: dict[str, dict[str, Any]] = {}
        for field in type(params).model_fields:
            source = DEFAULT if field in in_file.model_fields_set else BUILT_IN
            if field == "mode" and section.mode is not None:
                source = CUSTOMER_MODE
            if field in overrides:
                source = OVERRIDE
            if field == "enabled" and name in section.allow.detectors:
                source = ALLOWLIST
            rows[field] = {"value": _json(getattr(params, field)), "source": source}
        detectors[name] = rows
    default_capacity = getattr(ctx.params.get("did_concurrency"), "default_capacity", 20)
    dids = {did: ({"capacity": r.capacity, "source": "customer did"} if r.capacity is not None else
                  {"capacity": default_capacity, "source": "did_concurrency.default_capacity"})
            for did, r in section.dids.items()}
    code = "+" + str(phonenumbers.country_code_for_region(ctx.country))
    allowed = ctx.allow_destinations
    rates = []
    for prefix, rate in sorted(rules.rates.prefixes.items()):
        tags = []
        if prefix.startswith(code):
            tags.append("national")
        if any(prefix.startswith(p) for p in rules.high_risk_prefixes):
            tags.append("high_risk")
        if any(a.startswith(prefix) or prefix.startswith(a) for a in allowed):
            tags.append("allowlisted")
        rates.append({"prefix": prefix, "per_min": rate.per_min, "per_call": rate.per_call, "note": rate.note,
                      "tags": tags})
    return {
        "customer_id": customer_id,
        "in_rules": cust is not None,
        "name": section.name,
        "country": ctx.country,
        "country_source": "customer" if section.country else "ingest.default_country",
        "mode": section.mode or "per detector",
        "link_kbps": ctx.link_kbps,
        "dids": dids,
        "allow_destinations": list(allowed),
        "detectors": detectors,
        "rates": {"currency": rules.rates.currency, "rule": "longest prefix wins", "entries": rates},
        "rules_version": rules.version,
    }
