"""Rules files: the first fault named with its line and full field; overrides checked against the file."""

from __future__ import annotations

import pytest

from engine.registry import parse_rules
from tollguard.errors import RulesError

CASES = [
    ("detectors:\n  autodialer:\n    window_s: -5\n", 3, "detectors.autodialer.window_s",
     "The 'window_s' parameter of AutodialerParams must be >= 60 and <= 86400. Got -5 instead."),
    ("customers:\n  c1:\n    overrides:\n      autodialer: {max_asr: 1.5}\n", 4,
     "customers.c1.overrides.autodialer.max_asr",
     "The 'max_asr' parameter of AutodialerParams must be >= 0 and <= 1. Got 1.5 instead."),
    ("customers:\n  c1:\n    overrides:\n      autodialer:\n        min_attempt: 5\n", 5,
     "customers.c1.overrides.autodialer.min_attempt", "Extra inputs"),
    ("customers:\n  c1:\n    overrides:\n      autodialr: {}\n", 4, "customers.c1.overrides.autodialr",
     "unknown detector 'autodialr'"),
    ("detectors:\n  autodialer:\n    critical_attempts_per_min: 50\ncustomers:\n  c1:\n    overrides:\n"
     "      autodialer: {warn_attempts_per_min: 60}\n", 7, "customers.c1.overrides.autodialer",
     "critical_attempts_per_min (50.0) must be >= warn_attempts_per_min (60.0)"),
    ("customers:\n  c1:\n    country: XX\n", 3, "customers.c1.country", "'XX' is not a region"),
    ("ingest:\n  default_country: ZZ\n", 2, "ingest.default_country", "'ZZ' is not a region"),
    ("customers:\n  c1:\n    dids:\n      '+390212345678': {capacity: 0}\n", 4,
     "customers.c1.dids.+390212345678.capacity", "greater than or equal to 1"),
    ("a: [\n", 2, "", "not valid YAML"),
    # a key given twice (PyYAML would keep the last silently: the analyst's threshold gone)
    ("detectors:\n  spend:\n    hour_critical: 100\n  spend:\n    hour_warn: 10\n", 4, "",
     "key 'spend' is given twice in this mapping (first on line 2)"),
    ("- 1\n- 2\n", 1, "", "must be a YAML mapping"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), CASES)
def test_first_fault_with_line_and_field(text, line, field, message):
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    assert (info.value.line, info.value.field) == (line, field)
    assert message in info.value.message


def test_overrides_apply_on_the_files_own_thresholds():
    rules = parse_rules("detectors:\n  autodialer:\n    critical_attempts_per_min: 50\ncustomers:\n  c1:\n"
                        "    overrides:\n      autodialer: {warn_attempts_per_min: 45}\n")
    params = rules.context("c1").params["autodialer"]
    assert (params.warn_attempts_per_min, params.critical_attempts_per_min) == (45, 50)
    assert rules.context("other").params["autodialer"].warn_attempts_per_min == 10
    assert rules.version.startswith("unversioned+")


def _level_pairs():
    from engine.registry import ALL_DETECTORS

    return [(d.params_model, warn, crit) for d in ALL_DETECTORS for warn, crit in d.params_model.level_pairs]


@pytest.mark.parametrize(("model", "warn", "crit"), _level_pairs())
def test_every_warning_level_must_not_exceed_its_critical_level(model, warn, crit):
    from pydantic import ValidationError

    critical = getattr(model(), crit)
    assert getattr(model(**{warn: critical}), warn) == critical  # equal is allowed
    above = critical + (0.01 if isinstance(critical, float) and critical < 1 else 1)
    with pytest.raises(ValidationError, match=f"{crit} .* must be >= {warn}"):
        model(**{warn: above})


def test_level_pairs_cover_every_detector_with_two_levels():
    assert len(_level_pairs()) == 11  # 10 + arbitrage's high_cost_min_cost / high_cost_critical_cost


def test_an_alert_expiry_shorter_than_the_detectors_window_is_refused_with_the_reason():
    import pytest

    from tollguard.errors import RulesError

    text = "engine:\n  alert_expiry_s:\n    premium_destination: 600\n"
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "r.yaml")
    assert "alert_expiry_s.premium_destination (600 s) is shorter than detectors.premium_destination.window_s" in str(
        exc.value)
    with pytest.raises(RulesError, match=r"alert_expiry_s\.nosuch: unknown detector"):
        parse_rules("engine:\n  alert_expiry_s:\n    nosuch: 7200\n", "r.yaml")
    assert parse_rules("engine:\n  alert_expiry_s:\n    premium_destination: 7200\n").engine.alert_expiry_s == {
        "premium_destination": 7200}


def test_the_rate_table_prices_by_longest_prefix_and_refuses_bad_prefixes():
    import pytest

    from tollguard.errors import RulesError

    rules = parse_rules('rates:\n  currency: "GBP"\n  prefixes:\n    "+44": {per_min: 0.01}\n'
                        '    "+4490": {per_min: 2.0, per_call: 0.5}\n', "r.yaml")
    ctx = rules.context("c1")
    assert ctx.rates.currency == "GBP"
    assert ctx.rates.cost("+449012345678", 90) == 3.5  # 0.5 + 2.0 * 1.5 min
    assert ctx.rates.cost("+442079460000", 60) == 0.01
    assert ctx.rates.cost("+390612345678", 60) is None
    with pytest.raises(RulesError) as exc:
        parse_rules('rates:\n  prefixes:\n    "0044": {per_min: 1}\n', "r.yaml")
    assert exc.value.line == 2 and "E.164 prefixes" in str(exc.value)
    with pytest.raises(RulesError, match="ISO 4217"):
        parse_rules('rates:\n  currency: "euro"\n', "r.yaml")


# --------------------------------------------------------------------------- DID keys (issue 9)
DID_KEY_CASES = [
    # (customer section, DID key as written, E.164 it must become)
    ("", "+39 02 1234 1111", "+390212341111"),
    ("", "0039021234111", "+39021234111"),
    ("", "0039 02 1234 1111", "+390212341111"),
    ("", "02 1234 1111", "+390212341111"),  # national, default country IT
    ("", "tel:+39-02-1234-1111", "+390212341111"),
    ("    country: GB\n", "020 7946 0000", "+442079460000"),
    ("    country: GB\n", "0044 20 7946 0000", "+442079460000"),
    ("    country: US\n", "(201) 555-0123", "+12015550123"),
    ("    country: gb\n", "020 7946 0000", "+442079460000"),  # lower case, as --country gb
]


@pytest.mark.parametrize(("section", "key", "e164"), DID_KEY_CASES)
def test_did_keys_are_normalised_with_the_customers_country(section, key, e164):
    rules = parse_rules(f"customers:\n  c1:\n{section}    dids:\n      '{key}': {{capacity: 30}}\n", "r.yaml")
    assert dict(rules.customers["c1"].dids) == {e164: rules.customers["c1"].dids[e164]}
    ctx = rules.context("c1")
    assert ctx.did_capacity == {e164: 30}  # the detectors now find the DID the adapters deliver
    assert ctx.home_dids == frozenset({e164})


def test_did_keys_without_a_customer_country_use_the_files_default_country():
    text = "ingest:\n  default_country: DE\ncustomers:\n  c1:\n    dids:\n      '030 1234567': {capacity: 25}\n"
    assert parse_rules(text, "r.yaml").context("c1").did_capacity == {"+49301234567": 25}
    # the customer's own country wins over the default
    text = text.replace("    dids:", "    country: IT\n    dids:")
    assert parse_rules(text, "r.yaml").context("c1").did_capacity == {"+390301234567": 25}


DID_KEY_REFUSED = [
    # (rules text, line, field, message)
    ("customers:\n  c1:\n    dids:\n      '+390212341111': {}\n      'main-line': {capacity: 30}\n", 5,
     "customers.c1.dids.main-line", "not a phone number libphonenumber can normalise for IT"),
    ("customers:\n  c1:\n    country: GB\n    dids:\n      '201': {}\n", 5, "customers.c1.dids.201",
     "not a phone number libphonenumber can normalise for GB"),
    ("customers:\n  c1:\n    dids:\n      '+39 1': {capacity: 3}\n", 4, "customers.c1.dids.+39 1",
     "write the DID in E.164"),
    ("customers:\n  c1:\n    dids:\n      '112': {}\n", 4, "customers.c1.dids.112", "not a phone number"),
    ("customers:\n  c1:\n    dids:\n      390212341111: {capacity: 3}\n", 4, "customers.c1.dids.390212341111",
     "a DID must be a quoted string"),
    ("customers:\n  c1:\n    dids:\n      '+390212341111': {}\n      '02 1234 1111': {capacity: 3}\n", 3,
     "customers.c1.dids", "'+390212341111' and '02 1234 1111' are the same number +390212341111"),
    ("customers:\n  c1:\n    dids:\n      '+39 02 1234 5678': {capacity: 0}\n", 4,
     "customers.c1.dids.+39 02 1234 5678.capacity", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), DID_KEY_REFUSED)
def test_a_did_key_that_cannot_be_a_number_is_refused_with_line_and_field(text, line, field, message):
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    assert (info.value.line, info.value.field) == (line, field)
    assert message in info.value.message
    assert str(info.value).startswith(f"r.yaml:{line}: {field}: ")


def test_rules_check_refuses_a_did_key_that_cannot_be_a_number(tmp_path):
    from typer.testing import CliRunner

    from streams.cli import app

    path = tmp_path / "rules.yaml"
    path.write_text("customers:\n  c1:\n    dids:\n      'DID 1': {capacity: 40}\n")
    result = CliRunner().invoke(app, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert ":4: customers.c1.dids.DID 1:" in result.output
    path.write_text("customers:\n  c1:\n    dids:\n      '+39 02 1234 1111': {capacity: 40}\n")
    assert CliRunner().invoke(app, ["rules", "check", str(path)]).exit_code == 0
