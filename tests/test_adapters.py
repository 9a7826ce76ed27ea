"""Adapters: switch CDR formats -> CallDetailRecord (DESIGN §3).

Fixtures in tests/fixtures/ are hand-written in the real layouts (fictitious
numbers, documentation IP ranges); the real samples are read by the test marked
``samples`` from ../shared/data/cdr-samples when that folder exists.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.registry import Rules, load_rules
from streams.replay import replay_files
from tollguard.adapters import (
    MAPPING_HINT,
    MAX_DOC_BYTES,
    IngestSettings,
    Parsed,
    RejectError,
    TollguardError,
    parse_line,
    read_file,
    read_stream,
    sniff,
    write_record,
)
from tollguard.cdr import CallDetailRecord, Direction, Disposition

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = Path(os.environ.get("TOLLGUARD_SAMPLES") or Path(__file__).resolve().parents[2] / "shared/data/cdr-samples")
ROME = IngestSettings(timezone="Europe/Rome")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def outcomes(name: str, fmt: str = "auto", settings: IngestSettings = ROME, **kw) -> list[Parsed]:
    return list(read_file(FIXTURES / name, fmt, settings=settings, **kw))


def accepted(items: list[Parsed]) -> list[CallDetailRecord]:
    return [p.record for p in items if p.record is not None]


def rejected(items: list[Parsed]) -> dict[int, str]:
    return {p.line: p.reason for p in items if p.reason is not None}


def physical_lines(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# --------------------------------------------------------------------------- asterisk-csv
@pytest.mark.parametrize("fmt", ["asterisk-csv", "auto"])
def test_asterisk_21_columns(fmt: str) -> None:
    items = outcomes("asterisk_master_21.csv", fmt)
    assert [p.line for p in items if p.skipped] == [1, 2, 3, 6]
    assert rejected(items) == {}
    inbound, leg2, outbound_ext, outbound_cli, internal = accepted(items)

    assert inbound.call_id == "1741942800.1" and inbound.leg_id == "1741942800.1"
    assert inbound.customer_id == "acme"
    assert inbound.direction is Direction.INBOUND
    assert (inbound.caller, inbound.callee, inbound.did) == (
        "+390612345678",
        "+390298765432",
        "+390298765432",
    )
    assert (inbound.caller_raw, inbound.callee_raw) == ("0612345678", "0298765432")
    # 10:00 Europe/Rome in March is CET (+01:00)
    assert (inbound.start, inbound.answer, inbound.end) == (
        utc(2025, 3, 14, 9, 0, 0),
        utc(2025, 3, 14, 9, 0, 5),
        utc(2025, 3, 14, 9, 2, 5),
    )
    assert (inbound.duration_s, inbound.billsec_s) == (125.0, 120.0)
    assert inbound.disposition is Disposition.ANSWERED
    assert inbound.hangup_cause is None  # cdr_csv has no cause

    # second leg of the same call: shared linkedid, own uniqueid; merged downstream
    assert (leg2.call_id, leg2.leg_id) == ("1741942800.1", "1741942800.2")
    assert leg2.direction is Direction.INTERNAL and leg2.callee == "201" and leg2.did is None

    # July is CEST (+02:00); empty answer written as ,,
    assert outbound_ext.direction is Direction.OUTBOUND
    assert (outbound_ext.caller, outbound_ext.callee) == ("201", "+441632960123")
    assert outbound_ext.did is None  # an extension is not a presented CLI
    assert (outbound_ext.start, outbound_ext.answer, outbound_ext.end) == (
        utc(2025, 7, 1, 21, 30, 0),
        None,
        utc(2025, 7, 1, 21, 30, 30),
    )
    assert outbound_ext.disposition is Disposition.NO_ANSWER and outbound_ext.billsec_s == 0.0

    # empty answer written as "" ; CLI = the customer's DID
    assert outbound_cli.direction is Direction.OUTBOUND
    assert (outbound_cli.caller, outbound_cli.callee, outbound_cli.did) == (
        "+390298765432",
        "+393471234567",
        "+390298765432",
    )
    assert outbound_cli.answer is None and outbound_cli.disposition is Disposition.BUSY

    assert internal.direction is Direction.INTERNAL
    assert (internal.caller, internal.callee, internal.did) == ("201", "202", None)
    assert internal.customer_id == "default"  # empty accountcode
    assert internal.start == utc(2025, 7, 2, 6, 0, 0)


def test_asterisk_16_columns_hash_call_id() -> None:
    items = outcomes("asterisk_master_16.csv", "asterisk-csv")
    first, failed, again = accepted(items)
    assert first.call_id.startswith("ast-") and first.leg_id is None
    assert again.call_id == first.call_id  # a second delivery of the same row dedupes downstream
    assert failed.call_id != first.call_id
    assert first.direction is Direction.INBOUND and first.did == "+390298765432"
    assert (first.start, first.end, first.billsec_s) == (
        utc(2025, 3, 14, 9),
        utc(2025, 3, 14, 9, 2, 5),
        120.0,
    )
    assert failed.direction is Direction.OUTBOUND
    assert (failed.callee_raw, failed.callee) == ("0039 347 1234567", "+393471234567")
    assert failed.disposition is Disposition.FAILED and failed.answer is None


def test_asterisk_bad_lines_each_rejected_with_reason() -> None:
    path = FIXTURES / "asterisk_master_bad.csv"
    items = outcomes("asterisk_master_bad.csv", "auto")
    assert rejected(items) == {
        3: "asterisk-csv: expected 16, 18 or 21 columns, got 7",
        4: "asterisk-csv: bad timestamp 'xyz' in column end",
        5: "asterisk-csv: end before start (start 2025-03-14T09:00:00+00:00, end 2025-03-14T08:59:00+00:00)",
        7: "asterisk-csv: negative duration '-5'",
        8: "asterisk-csv: non-numeric duration 'ten'",
        9: "asterisk-csv: non-numeric billsec 'abc'",
        10: "asterisk-csv: expected 16, 18 or 21 columns, got 19; start/answer/end at columns 9-11 look like "
        "an Asterisk cdr_custom mapping (clid first, 19 columns), which is not the cdr_csv layout"
        + MAPPING_HINT,
    }
    assert [r.call_id for r in accepted(items)] == ["b.1"]
    assert [p.line for p in items if p.skipped] == [1, 6]
    # exactly one outcome per line: read = accepted + rejected + skipped
    counts = Counter("skipped" if p.skipped else "accepted" if p.accepted else "rejected" for p in items)
    assert counts == {"accepted": 1, "rejected": 7, "skipped": 2}
    assert sum(counts.values()) == physical_lines(path)
    assert [p.line for p in items] == list(range(1, physical_lines(path) + 1))


def test_asterisk_disposition_column_must_make_sense() -> None:
    row = (
        '"acme","201","202","from-internal","","PJSIP/201-1","","Dial","","2025-03-14 10:00:00","",'
        '"2025-03-14 10:00:10",10,0,"DOCUMENTATION","","u.1","","","u.1",1'
    )
    with pytest.raises(RejectError) as err:
        parse_line("asterisk-csv", row, ROME)
    assert err.value.reason.startswith("asterisk-csv: unknown disposition 'DOCUMENTATION'")
    assert "not the cdr_csv layout" in err.value.reason


# --------------------------------------------------------------------------- freeswitch-csv
@pytest.mark.parametrize("fmt", ["freeswitch-csv", "auto"])
def test_freeswitch_csv(fmt: str) -> None:
    items = outcomes("freeswitch_cdr.csv", fmt)
    assert rejected(items) == {}
    inbound, cancel, busy, congestion, unallocated, resaved = accepted(items)

    assert inbound.call_id == "0b6f1c3e-0000-4000-8000-000000000001"
    assert inbound.direction is Direction.INBOUND  # context "public"
    assert (inbound.caller, inbound.callee, inbound.did) == (
        "+390612345678",
        "+390298765432",
        "+390298765432",
    )
    assert (inbound.start, inbound.answer, inbound.end) == (
        utc(2025, 3, 14, 9, 0, 0),
        utc(2025, 3, 14, 9, 0, 4),
        utc(2025, 3, 14, 9, 1, 4),
    )
    assert (inbound.duration_s, inbound.billsec_s) == (64.0, 60.0)
    assert (inbound.disposition, inbound.hangup_cause, inbound.codec) == (Disposition.ANSWERED, 16, "PCMA")

    assert cancel.direction is Direction.OUTBOUND and cancel.did == "+390298765432"
    assert cancel.callee == "+441632960123"
    # ORIGINATOR_CANCEL (487) is reported as Q.850 16, like FreeSWITCH's hangup_cause_q850
    assert (cancel.disposition, cancel.hangup_cause, cancel.answer) == (Disposition.NO_ANSWER, 16, None)
    assert cancel.codec is None

    # 1001 -> 1002 (FreeSWITCH's default users): 1002 is an IT short code (libphonenumber), so the
    # call is external unless the extension plan is declared (issue 9; see test_extensions_setting...)
    assert busy.direction is Direction.OUTBOUND and busy.did is None and busy.callee == "1002"
    assert (busy.disposition, busy.hangup_cause) == (Disposition.BUSY, 17)
    assert (congestion.disposition, congestion.hangup_cause) == (Disposition.CONGESTION, 34)
    # a 7-digit callee that does not normalise is still an external destination
    assert unallocated.direction is Direction.OUTBOUND and unallocated.callee == "0039061"
    assert (unallocated.disposition, unallocated.hangup_cause) == (Disposition.FAILED, 1)
    assert unallocated.customer_id == "default"

    # spreadsheet re-save: unquoted, "YYYY/M/D HH:MM"
    assert (resaved.start, resaved.answer, resaved.end) == (
        utc(2025, 3, 14, 10, 5),
        utc(2025, 3, 14, 10, 5),
        utc(2025, 3, 14, 10, 7),
    )
    assert resaved.direction is Direction.OUTBOUND and resaved.did is None
    assert (resaved.billsec_s, resaved.codec) == (90.0, "G722")


def test_freeswitch_csv_sql_template_and_bad_cause() -> None:
    sql = (
        'INSERT INTO cdr VALUES ("Acme","0298765432","3471234567","default","2025-03-14 10:00:00",'
        '"2025-03-14 10:00:02","2025-03-14 10:00:12","12","10","NORMAL_CLEARING",'
        '"0b6f1c3e-0000-4000-8000-000000000009","", "acme");'
    )
    for fmt in ("freeswitch-csv", "auto"):
        rec = parse_line(fmt, sql, ROME)
        assert (rec.call_id, rec.direction, rec.callee, rec.billsec_s) == (
            "0b6f1c3e-0000-4000-8000-000000000009",
            Direction.OUTBOUND,
            "+393471234567",
            10.0,
        )
    bad = (
        '"a","1001","1002","default","2025-03-14 10:00:00","","2025-03-14 10:00:01","1","0","WHATEVER",'
        '"u","","","",""'
    )
    with pytest.raises(RejectError, match=r"^freeswitch-csv: unknown hangup cause 'WHATEVER'"):
        parse_line("freeswitch-csv", bad)
    with pytest.raises(RejectError, match=r"^freeswitch-csv: expected 15 columns .* got 3$"):
        parse_line("freeswitch-csv", '"a","b","c"')


# --------------------------------------------------------------------------- freeswitch-json
@pytest.mark.parametrize("fmt", ["freeswitch-json", "auto"])
def test_freeswitch_json(fmt: str) -> None:
    items = outcomes("freeswitch_cdr.json", fmt)
    assert rejected(items) == {}
    assert [p.line for p in items if not p.skipped] == [3, 5, 7]  # the pretty document starts on line 7
    encoded, plain, pretty = accepted(items)

    assert encoded.call_id == "9a1d0c2e-0000-4000-8000-000000000001"
    assert encoded.direction is Direction.INBOUND
    assert (encoded.caller, encoded.callee, encoded.did) == (
        "+390612345678",
        "+390298765432",
        "+390298765432",
    )
    assert encoded.start == utc(2025, 3, 14, 9, 0, 0)
    assert encoded.answer == datetime(2025, 3, 14, 9, 0, 6, 250000, tzinfo=UTC)
    assert encoded.end == datetime(2025, 3, 14, 9, 2, 6, 750000, tzinfo=UTC)
    assert (encoded.duration_s, encoded.billsec_s) == (126.75, 120.5)  # from mduration / billmsec
    assert (encoded.disposition, encoded.hangup_cause) == (Disposition.ANSWERED, 16)
    assert encoded.user_agent == "Yealink SIP-T46S 66.86.0.15"  # URL-decoded
    assert (encoded.source_ip, encoded.codec) == ("198.51.100.7", "PCMA")
    assert (encoded.rtp_in_bytes, encoded.rtp_out_bytes) == (1250000.0, 1240000.0)
    assert (encoded.rtp_in_packets, encoded.rtp_out_packets, encoded.rtp_lost_packets) == (
        6200.0,
        6150.0,
        12.0,
    )
    assert encoded.mos == 4.41
    assert encoded.media_start == datetime(2025, 3, 14, 9, 0, 3, 500000, tzinfo=UTC)  # early media

    # plain values, local *_stamp (CEST), callStats media, media from answer
    assert plain.direction is Direction.OUTBOUND
    assert (plain.caller, plain.callee, plain.did) == ("+390298765432", "+441632960123", "+390298765432")
    assert (plain.start, plain.answer, plain.end) == (
        utc(2025, 7, 1, 21, 30, 0),
        utc(2025, 7, 1, 21, 30, 8),
        utc(2025, 7, 1, 21, 31, 8),
    )
    assert (plain.duration_s, plain.billsec_s, plain.codec) == (68.0, 60.0, "G722")
    assert (plain.rtp_in_bytes, plain.rtp_out_bytes, plain.rtp_lost_packets, plain.mos) == (
        480000.0,
        481000.0,
        3.0,
        4.1,
    )
    assert plain.media_start == utc(2025, 7, 1, 21, 30, 8)

    assert pretty.call_id == "9a1d0c2e-0000-4000-8000-000000000003"
    # 1001 -> 1002 in IT: a short code, hence external (issue 9), with no public CLI
    assert (pretty.direction, pretty.did, pretty.answer) == (Direction.OUTBOUND, None, None)
    assert (pretty.disposition, pretty.hangup_cause, pretty.billsec_s) == (Disposition.NO_ANSWER, 19, 0.0)
    assert pretty.media_start is None


def test_freeswitch_json_multiline_via_parse_line_and_bad_documents() -> None:
    doc = (FIXTURES / "freeswitch_cdr.json").read_text().split("\n# 3)")[1].split("\n", 1)[1]
    assert parse_line("freeswitch-json", doc, ROME).call_id == "9a1d0c2e-0000-4000-8000-000000000003"
    with pytest.raises(RejectError, match=r"^freeswitch-json: no 'variables' object"):
        parse_line("freeswitch-json", '{"core-uuid":"x"}')
    with pytest.raises(RejectError, match=r"^freeswitch-json: invalid JSON"):
        parse_line("freeswitch-json", '{"variables": ')


def test_json_reader_resyncs_and_caps_documents(tmp_path: Path) -> None:
    good = (FIXTURES / "freeswitch_cdr.json").read_text().splitlines()[2]
    path = tmp_path / "mixed.json"
    big = ['{"variables": {'] + [f'  "k{i}": "{"x" * 100}",' for i in range(12000)] + ['  "z": "1"', "}}"]
    path.write_text("\n".join(["{", '  "variables": {', good, *big, good, '{"variables": {']) + "\n")
    items = list(read_file(path, "freeswitch-json", settings=ROME))
    assert [(p.line, p.accepted) for p in items] == [
        (1, False),
        (3, True),
        (4, False),
        (12007, True),
        (12008, False),
    ]
    assert items[0].reason == "unterminated JSON document"  # an unindented '{' started the next one
    assert items[2].reason == f"JSON document larger than {MAX_DOC_BYTES} bytes"
    assert items[4].reason == "unterminated JSON document"  # at end of file


# --------------------------------------------------------------------------- jsonl
@pytest.mark.parametrize("fmt", ["jsonl", "auto"])
def test_canonical_jsonl(fmt: str) -> None:
    items = outcomes("canonical.jsonl", fmt)
    first, naive = accepted(items)
    assert first.call_id == "k-1" and first.rtp_in_bytes == 1200000.0 and first.codec == "PCMA"
    assert (first.start, first.end, first.disposition) == (
        utc(2025, 3, 14, 9),
        utc(2025, 3, 14, 9, 2, 5),
        Disposition.ANSWERED,
    )
    # a naive time gets settings.timezone like every format
    assert (naive.start, naive.end) == (utc(2025, 3, 14, 9, 5), utc(2025, 3, 14, 9, 5, 12))
    reasons = rejected(items)
    assert reasons[4].startswith(
        "jsonl: invalid record: Value error, end 2025-03-14T09:09:00+00:00 is before start"
    )
    assert (
        reasons[5] == "jsonl: invalid record: direction: Input should be 'inbound', 'outbound' or 'internal'"
    )
    assert all("\n" not in r for r in reasons.values())


# --------------------------------------------------------------------------- files in general
def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    for fmt in ("auto", "asterisk-csv", "freeswitch-json"):
        assert list(read_file(tmp_path / "empty.csv", fmt)) == []


def test_binary_file_is_rejected_line_by_line_without_crash(tmp_path: Path) -> None:
    path = tmp_path / "core.bin"
    path.write_bytes(bytes(range(256)) * 40)
    for fmt in ("auto", "asterisk-csv", "freeswitch-csv", "freeswitch-json", "jsonl"):
        items = list(read_file(path, fmt))
        assert len(items) == physical_lines(path) == 41
        assert all("\x00" not in p.raw for p in items)
        assert all(p.record is None and not p.skipped for p in items)
        assert items[0].reason == "NUL byte in line (binary data?)"
        assert items[1].reason == "undecodable bytes (not UTF-8) at byte 117"


def test_overlong_line_is_rejected_and_reading_continues(tmp_path: Path) -> None:
    good = (FIXTURES / "asterisk_master_21.csv").read_text().splitlines()[3]
    path = tmp_path / "long.csv"
    path.write_text(good + "\n" + "x" * (MAX_DOC_BYTES + 10) + "\n" + good + "\n")
    items = list(read_file(path, "auto", settings=ROME))
    assert [(p.line, p.accepted) for p in items] == [(1, True), (2, False), (3, True)]
    assert items[1].reason == f"line longer than {MAX_DOC_BYTES} bytes"


def test_auto_fixes_the_format_at_the_first_cdr_line() -> None:
    asterisk = (FIXTURES / "asterisk_master_21.csv").read_text().splitlines()[3]
    fs = (FIXTURES / "freeswitch_cdr.csv").read_text().splitlines()[2]
    data = f"# header\nnot,a,cdr\n{asterisk}\n{fs}\n".encode()
    items = list(read_stream(io.BytesIO(data), "stdin", "auto", ROME))
    assert [p.source for p in items] == ["stdin"] * 4
    assert items[0].skipped
    assert items[1].reason is not None and items[1].reason.startswith("auto: unknown layout (3 CSV columns)")
    assert items[2].accepted
    assert items[3].reason == "asterisk-csv: expected 16, 18 or 21 columns, got 15"
    # a single message is sniffed on its own
    assert parse_line("auto", fs, ROME).call_id == "0b6f1c3e-0000-4000-8000-000000000001"
    assert sniff(fs) == "freeswitch-csv" and sniff(asterisk) == "asterisk-csv"


def test_parse_line_inputs_and_errors() -> None:
    line = (FIXTURES / "asterisk_master_21.csv").read_text().splitlines()[3]
    assert parse_line("asterisk-csv", (line + "\r\n").encode(), ROME).call_id == "1741942800.1"
    for raw, reason in [
        ("", "empty line"),
        ("   \n", "empty line"),
        ("# note", "comment line, not a CDR"),
        (b"\xff\xfe", "undecodable bytes (not UTF-8) at byte 0"),
        ("a\x00b", "NUL byte in line (binary data?)"),
    ]:
        with pytest.raises(RejectError) as err:
            parse_line("auto", raw)
        assert err.value.reason == reason
        assert isinstance(err.value, TollguardError)
    with pytest.raises(ValueError, match="unknown CDR format 'csv'"):
        parse_line("csv", line)
    with pytest.raises(ValueError, match="unknown CDR format"):
        read_file(FIXTURES / "canonical.jsonl", "xml")


def test_country_of_and_access_codes() -> None:
    row = (
        '"uk1","02079460000","9 0039 06 1234 5678","from-internal","","PJSIP/201-1","","Dial","",'
        '"2025-03-14 10:00:00","","2025-03-14 10:00:10",10,0,"NO ANSWER","DOCUMENTATION","u.1","","","u.1",1'
    )
    settings = IngestSettings(access_codes=("9",))
    rec = parse_line("asterisk-csv", row, settings, country_of=lambda cid: "GB" if cid == "uk1" else "IT")
    assert (rec.caller, rec.callee, rec.did) == ("+442079460000", "+390612345678", "+442079460000")
    assert rec.start == utc(2025, 3, 14, 10)  # default timezone UTC


def test_settings_validation() -> None:
    assert IngestSettings().asterisk_inbound_contexts[0] == "from-trunk*"
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        IngestSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        IngestSettings(tz="UTC")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ROME.timezone = "UTC"  # type: ignore[misc]
    # an outbound glob wins over an inbound one ("outbound-trunk" matches "*-trunk" too)
    row = (
        '"acme","201","202","outbound-trunk","","PJSIP/201-1","","Dial","","2025-03-14 10:00:00","",'
        '"2025-03-14 10:00:10",10,0,"NO ANSWER","DOCUMENTATION","u.1","","","u.1",1'
    )
    assert parse_line("asterisk-csv", row).direction is Direction.INTERNAL


# --------------------------------------------------------------------------- numbers (issue 9)
SWITCH_FORMATS = ("asterisk-csv", "freeswitch-csv", "freeswitch-json")
ALL_FORMATS = ("jsonl", *SWITCH_FORMATS)


def _call(direction: Direction, caller: str, callee: str, did: str | None, customer: str = "acme") -> CallDetailRecord:
    """One answered call as a switch would write it (raw numbers; parsed back per format)."""
    return CallDetailRecord(
        call_id=f"n-{direction.value}-{caller}-{callee}",
        customer_id=customer,
        direction=direction,
        caller=caller,
        callee=callee,
        did=did,
        start=utc(2025, 3, 14, 9, 0, 0),
        answer=utc(2025, 3, 14, 9, 0, 5),
        end=utc(2025, 3, 14, 9, 2, 5),
        duration_s=125,
        billsec_s=120,
        disposition=Disposition.ANSWERED,
    )


def _parsed(fmt: str, record: CallDetailRecord, country: str = "IT", **settings: object) -> CallDetailRecord:
    line = write_record(fmt, record, timezone="Europe/Rome")
    return parse_line(fmt, line, IngestSettings(timezone="Europe/Rome", **settings), country_of=lambda _: country)


DID_FORMS = [
    # (DID as written, the customer's country): all are +390612345678
    ("+390612345678", "IT"),
    ("00390612345678", "IT"),
    ("390612345678", "IT"),
    ("0612345678", "IT"),
    ("+39 06 1234 5678", "IT"),
    ("00390612345678", "DE"),
    ("+390612345678", "GB"),
    ("011390612345678", "US"),
]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize(("written", "country"), DID_FORMS)
def test_one_did_in_every_format_inbound(fmt: str, written: str, country: str) -> None:
    """00390612345678 and +390612345678 are one DID in every format (jsonl included)."""
    rec = _parsed(fmt, _call(Direction.INBOUND, "+442079460000", written, written), country)
    assert (rec.direction, rec.did, rec.callee) == (Direction.INBOUND, "+390612345678", "+390612345678")
    assert rec.caller == "+442079460000"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize(("written", "country"), DID_FORMS)
def test_one_did_in_every_format_outbound(fmt: str, written: str, country: str) -> None:
    """The DID of an outbound call (the presented CLI) likewise; the callee too."""
    rec = _parsed(fmt, _call(Direction.OUTBOUND, written, "0044 20 7946 0000", written), country)
    assert (rec.direction, rec.did, rec.caller) == (Direction.OUTBOUND, "+390612345678", "+390612345678")
    assert rec.callee == "+442079460000"


def test_one_did_across_formats_is_the_same_value() -> None:
    """The same call written 00390612345678 and +390612345678, each in each format: one DID value."""
    dids = {
        _parsed(fmt, _call(Direction.INBOUND, "+442079460000", written, written)).did
        for fmt in ALL_FORMATS
        for written in ("00390612345678", "+390612345678")
    }
    assert dids == {"+390612345678"}


def test_canonical_keeps_the_raw_numbers() -> None:
    """jsonl: a normalised caller / callee keeps the value as written in caller_raw / callee_raw."""
    rec = _parsed("jsonl", _call(Direction.INBOUND, "0044 20 7946 0000", "0612345678", "00390612345678"))
    assert (rec.caller, rec.callee, rec.did) == ("+442079460000", "+390612345678", "+390612345678")
    assert (rec.caller_raw, rec.callee_raw) == ("0044 20 7946 0000", "0612345678")
    # a raw value given in the line is kept; canonical values, extensions and garbage are left alone
    line = json.dumps({
        "call_id": "k", "customer_id": "acme", "direction": "internal", "caller": "201", "callee": "anonymous",
        "start": "2025-03-14T09:00:00+00:00", "end": "2025-03-14T09:00:01+00:00", "duration_s": 1, "billsec_s": 0,
        "disposition": "NO ANSWER",
    })  # fmt: skip
    rec = parse_line("jsonl", line)
    assert (rec.caller, rec.callee, rec.caller_raw, rec.callee_raw, rec.did) == ("201", "anonymous", None, None, None)
    line = json.dumps({**json.loads(line), "direction": "outbound", "caller": "00390612345678",
                       "caller_raw": "sip:00390612345678@pbx", "did": "0612345678"})
    rec = parse_line("jsonl", line)
    assert (rec.caller, rec.caller_raw, rec.did) == ("+390612345678", "sip:00390612345678@pbx", "+390612345678")


def test_canonical_uses_the_customers_country() -> None:
    line = json.dumps({
        "call_id": "k", "customer_id": "uk1", "direction": "outbound", "caller": "020 7946 0000",
        "callee": "00 39 06 1234 5678", "did": "020 7946 0000", "start": "2025-03-14T09:00:00+00:00",
        "end": "2025-03-14T09:00:01+00:00", "duration_s": 1, "billsec_s": 0, "disposition": "NO ANSWER",
    })  # fmt: skip
    rec = parse_line("jsonl", line, country_of=lambda cid: "GB" if cid == "uk1" else "IT")
    assert (rec.caller, rec.callee, rec.did) == ("+442079460000", "+390612345678", "+442079460000")
    # the customer's country comes from the rules, as in replay and the stream
    rules = Rules(version="t", customers={"uk1": {"country": "GB"}})
    assert parse_line("jsonl", line, rules.ingest, rules.country_of).did == "+442079460000"
    rec = parse_line("jsonl", line.replace('"uk1"', '"it1"'), rules.ingest, rules.country_of)
    assert rec.did != "+442079460000"  # read as an Italian national number


SHORT_CODE_CASES = [
    # (customer's country, short number dialled from extension 201): an external call in every format
    ("IT", "112"),
    ("IT", "113"),
    ("IT", "118"),
    ("IT", "1200"),  # 4-digit premium-rate carrier service
    ("IT", "1254"),
    ("IT", "48280"),
    ("GB", "999"),
    ("GB", "111"),
    ("GB", "112"),
    ("DE", "110"),
    ("FR", "15"),
    ("US", "911"),
    ("BE", "4242"),
]


@pytest.mark.parametrize("fmt", SWITCH_FORMATS)
@pytest.mark.parametrize(("country", "short"), SHORT_CODE_CASES)
def test_short_code_valid_in_the_country_is_an_external_call(fmt: str, country: str, short: str) -> None:
    from tollguard.numbers import NumberType, classify

    rec = _parsed(fmt, _call(Direction.OUTBOUND, "201", short, None), country)
    assert (rec.direction, rec.callee, rec.did) == (Direction.OUTBOUND, short, None)
    info = classify(rec.callee, country)  # as a detector types it: never an extension
    assert info.number_type in (NumberType.EMERGENCY, NumberType.SHORT_CODE)
    # presented with the customer's DID as CLI, the DID is that CLI
    rec = _parsed(fmt, _call(Direction.OUTBOUND, "+390612345678", short, "+390612345678"), country)
    assert (rec.direction, rec.callee, rec.did) == (Direction.OUTBOUND, short, "+390612345678")


@pytest.mark.parametrize("fmt", SWITCH_FORMATS)
def test_emergency_numbers_are_outbound_and_typed_emergency(fmt: str) -> None:
    from tollguard.numbers import classify

    for country, number in (("IT", "112"), ("IT", "113"), ("IT", "115"), ("IT", "118"), ("GB", "999"),
                            ("DE", "110"), ("US", "911")):  # fmt: skip
        rec = _parsed(fmt, _call(Direction.OUTBOUND, "201", number, None), country)
        assert rec.direction is Direction.OUTBOUND, (country, number)
        assert classify(rec.callee, country).is_emergency, (country, number)


@pytest.mark.parametrize("fmt", SWITCH_FORMATS)
def test_extensions_stay_internal(fmt: str) -> None:
    """Extensions that are no short code of the country stay internal; 999 / 911 abroad are extensions."""
    for country, caller, callee in (("IT", "201", "202"), ("IT", "201", "911"), ("US", "201", "999"),
                                    ("DE", "1001", "1002"), ("GB", "2001", "2002"), ("IT", "201", "*97")):
        rec = _parsed(fmt, _call(Direction.INTERNAL, caller, callee, None), country)
        assert (rec.direction, rec.callee, rec.did) == (Direction.INTERNAL, callee, None), (country, callee)


@pytest.mark.parametrize("fmt", SWITCH_FORMATS)
def test_extensions_setting_and_access_codes_decide_overlapping_short_codes(fmt: str) -> None:
    """An extension plan that overlaps short codes: ``ingest.extensions`` or an access code keeps it internal."""
    call = _call(Direction.INTERNAL, "1001", "1002", None)
    assert _parsed(fmt, call).direction is Direction.OUTBOUND  # 1002 is an IT short code
    assert _parsed(fmt, call, extensions=("10??",)).direction is Direction.INTERNAL
    assert _parsed(fmt, call, access_codes=("0",)).direction is Direction.INTERNAL
    # emergency numbers are external whatever the extension globs say
    emergency = _call(Direction.OUTBOUND, "101", "112", None)
    assert _parsed(fmt, emergency, extensions=("1??",)).direction is Direction.OUTBOUND
    # after the access code a short code is external, and the callee is the short number
    dialled = _call(Direction.OUTBOUND, "201", "0 1200", None)
    rec = _parsed(fmt, dialled, access_codes=("0",), extensions=("1???",))
    assert (rec.direction, rec.callee, rec.callee_raw) == (Direction.OUTBOUND, "1200", "0 1200")


def test_jsonl_short_code_callee_loses_the_access_code() -> None:
    rec = _parsed("jsonl", _call(Direction.OUTBOUND, "201", "9 112", None), access_codes=("9",))
    assert (rec.callee, rec.callee_raw, rec.direction) == ("112", "9 112", Direction.OUTBOUND)


# --------------------------------------------------------------------------- compressed, UTF-16, headers
def _view(items: list[Parsed]) -> list[tuple]:
    """Everything of the outcomes but the source name."""
    return [(p.line, p.raw, p.record, p.reason, p.skipped, p.exact) for p in items]


def _outcome(p: Parsed) -> str:
    return "skipped" if p.skipped else "accepted" if p.accepted else "rejected"


AST_21 = (FIXTURES / "asterisk_master_21.csv").read_bytes()


@pytest.mark.parametrize("name", ["Master.csv.gz", "Master.csv.1", "Master.csv"])
def test_gzip_file_is_read_transparently_whatever_its_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(AST_21, mtime=0))
    items = list(read_file(path, "auto", settings=ROME))
    assert _view(items) == _view(outcomes("asterisk_master_21.csv"))
    assert [p.line for p in items] == list(range(1, 10))
    assert Counter(map(_outcome, items)) == {"accepted": 5, "skipped": 4}
    # a stream without peek() (BytesIO), and two gzip members (a rotated file appended to)
    both = gzip.compress(AST_21, mtime=0) + gzip.compress(AST_21, mtime=0)
    stream = io.BytesIO(both)
    streamed = list(read_stream(stream, "cat", "auto", ROME))
    assert [p.line for p in streamed] == list(range(1, 19))
    assert not stream.closed  # the caller's stream is left open
    assert [p.accepted for p in streamed] == [p.accepted for p in items] * 2


def test_truncated_or_corrupt_gzip_keeps_the_lines_read_then_one_reject(tmp_path: Path) -> None:
    # member 1 whole (9 lines), member 2 cut inside its header: exactly 9 lines, then the reject
    path = tmp_path / "Master.csv.gz"
    path.write_bytes(gzip.compress(AST_21, mtime=0) + gzip.compress(AST_21, mtime=0)[:8])
    items = list(read_file(path, "auto", settings=ROME))
    assert _view(items[:9]) == _view(outcomes("asterisk_master_21.csv"))
    assert _view(items[9:]) == [(10, "", None, "truncated gzip stream after line 9", False, False)]
    # a big rotated file cut in the middle: a prefix of its lines, then the reject
    lines = AST_21.splitlines(keepends=True)[3:5] * 2000
    data = gzip.compress(b"".join(lines), mtime=0)
    path.write_bytes(data[: len(data) // 2])
    items = list(read_file(path, "asterisk-csv", settings=ROME))
    n = len(items) - 1
    assert 0 < n < len(lines)
    assert [p.raw.encode() + b"\n" for p in items[:n]] == lines[:n]
    assert all(p.accepted for p in items[:n])
    assert (items[n].line, items[n].reason) == (n + 1, f"truncated gzip stream after line {n}")
    summary = replay_files([path], Rules(version="t"), io.StringIO(), io.StringIO())
    assert (summary.lines_read, summary.accepted, summary.rejected, summary.skipped) == (n + 1, n, 1, 0)
    # nothing but the magic bytes
    path.write_bytes(b"\x1f\x8b")
    assert _view(list(read_file(path))) == [(1, "", None, "truncated gzip stream after line 0", False, False)]
    # a bad CRC at the end: every line was read, then the reject
    bad = bytearray(gzip.compress(AST_21, mtime=0))
    bad[-8] ^= 0xFF
    path.write_bytes(bytes(bad))
    items = list(read_file(path, "auto", settings=ROME))
    assert _view(items[:9]) == _view(outcomes("asterisk_master_21.csv"))
    assert len(items) == 10 and items[9].line == 10
    assert items[9].reason is not None
    assert items[9].reason.startswith("corrupt gzip stream after line 9 (CRC check failed")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_files_are_decoded(tmp_path: Path, encoding: str) -> None:
    text = AST_21.decode().replace("\n", "\r\n")  # a Windows export
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    path = tmp_path / "Master.csv"
    path.write_bytes(bom + text.encode(encoding))
    items = list(read_file(path, "auto", settings=ROME))
    assert _view(items) == _view(outcomes("asterisk_master_21.csv"))  # 9 lines: no phantom 10th
    # gzip of UTF-16, and a UTF-8 BOM (kept working)
    path.write_bytes(gzip.compress(bom + text.encode(encoding)))
    assert _view(list(read_file(path, "auto", settings=ROME))) == _view(items)
    path.write_bytes(b"\xef\xbb\xbf" + AST_21)
    assert _view(list(read_file(path, "auto", settings=ROME))) == _view(items)


def test_utf16_lone_surrogate_and_odd_trailing_byte_are_rejected(tmp_path: Path) -> None:
    good = AST_21.decode().splitlines()[3]
    path = tmp_path / "export.csv"
    body = f"{good}\n".encode("utf-16-le") + b"a\x00\x00\xd8b\x00\n\x00" + f"{good}\n".encode("utf-16-le")
    path.write_bytes(b"\xff\xfe" + body + b"x")
    items = list(read_file(path, "auto", settings=ROME))
    assert [(p.line, _outcome(p), p.reason, p.exact) for p in items] == [
        (1, "accepted", None, True),
        (2, "rejected", "undecodable text (invalid UTF-16) at character 1", False),
        (3, "accepted", None, True),
        (4, "rejected", "undecodable text (invalid UTF-16) at character 0", False),
    ]
    assert items[1].raw == "a\\xed\\xa0\\x80b"


HEADER_AST = ",".join(["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
                       "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
                       "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"])  # fmt: skip
HEADER_FS = ",".join(f'"{c}"' for c in ["caller_id_name", "caller_id_number", "destination_number", "context",
                                        "start_stamp", "answer_stamp", "end_stamp", "duration", "billsec",
                                        "hangup_cause", "uuid", "bleg_uuid", "accountcode", "read_codec",
                                        "write_codec"])  # fmt: skip


def test_csv_header_rows_are_skipped(tmp_path: Path) -> None:
    ast_lines = AST_21.decode().splitlines()
    fs_lines = (FIXTURES / "freeswitch_cdr.csv").read_text().splitlines()
    for fmt in ("auto", "asterisk-csv"):
        path = tmp_path / "Master.csv"
        path.write_text("\n".join([HEADER_AST, ast_lines[3], HEADER_AST.upper(), ast_lines[4]]) + "\n")
        items = list(read_file(path, fmt, settings=ROME))
        assert [(p.line, _outcome(p), p.reason) for p in items] == [
            (1, "skipped", None), (2, "accepted", None), (3, "skipped", None), (4, "accepted", None),
        ]  # fmt: skip
    for fmt in ("auto", "freeswitch-csv"):
        path = tmp_path / "cdr.csv"
        spaced = "Caller ID Name, Caller ID Number, Destination Number, x"  # 3 of 4 cells are names
        path.write_text("\n".join([HEADER_FS, fs_lines[2], spaced]) + "\n")
        items = list(read_file(path, fmt, settings=ROME))
        assert [(p.line, _outcome(p)) for p in items] == [(1, "skipped"), (2, "accepted"), (3, "skipped")]
    # not headers: too few known names, or a JSON file
    path.write_text("src,dst,a,b,c\nfoo,bar\n")
    assert [_outcome(p) for p in read_file(path)] == ["rejected", "rejected"]
    path.write_text(HEADER_AST + "\n")
    assert [(_outcome(p), p.reason) for p in read_file(path, "jsonl")] == [
        ("rejected", "jsonl: not a JSON object (expected '{' at the start of the line)")
    ]
    # one message (the stream worker): a clear reject
    for fmt in ("auto", "asterisk-csv", "freeswitch-csv"):
        for header in (HEADER_AST, HEADER_FS):
            with pytest.raises(RejectError) as err:
                parse_line(fmt, header)
            assert err.value.reason == "CSV header row (column names), not a CDR"


def test_unknown_layout_reason_says_what_did_not_fit() -> None:
    fs = next(csv.reader([(FIXTURES / "freeswitch_cdr.csv").read_text().splitlines()[2]]))
    ast = next(csv.reader([AST_21.decode().splitlines()[3]]))

    def reason(row: list[str]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        with pytest.raises(RejectError) as err:
            parse_line("auto", buf.getvalue())
        return err.value.reason

    assert reason([*fs[:4], "xyz", *fs[5:]]) == (
        "auto: unknown layout (15 CSV columns like FreeSWITCH mod_cdr_csv, but column 5 (start_stamp) "
        "'xyz' is not a timestamp)" + MAPPING_HINT
    )
    assert reason([*fs[:6], "", *fs[7:]]) == (
        "auto: unknown layout (15 CSV columns like FreeSWITCH mod_cdr_csv, but column 7 (end_stamp) "
        "'' is not a timestamp)" + MAPPING_HINT
    )
    assert reason([*ast[:11], "bad", *ast[12:]]) == (
        "auto: unknown layout (21 CSV columns like Asterisk cdr_csv, but column 12 (end) 'bad' is not "
        "a timestamp)" + MAPPING_HINT
    )
    assert reason(fs[:14]) == (
        "auto: unknown layout (14 CSV columns): Asterisk cdr_csv writes 16, 18 or 21 columns "
        "(start/answer/end at columns 10-12), FreeSWITCH mod_cdr_csv 13, 15, 17 or 20 (timestamps at "
        "columns 5-7); closest to FreeSWITCH mod_cdr_csv (freeswitch-csv), 13/15/17/20 columns with times at "
        "columns 5 and 7 (timestamps at column(s) 5, 6, 7)" + MAPPING_HINT
    )
    # cdr_custom, clid first
    custom = ["x"] * 8 + ["2025-03-14 10:00:00", "", "2025-03-14 10:01:00"] + ["y"] * 8
    assert reason(custom) == (
        "auto: unknown layout (19 CSV columns): Asterisk cdr_csv writes 16, 18 or 21 columns "
        "(start/answer/end at columns 10-12), FreeSWITCH mod_cdr_csv 13, 15, 17 or 20 (timestamps at "
        "columns 5-7); start/answer/end at columns 9-11 look like an Asterisk cdr_custom mapping (clid "
        "first, 19 columns), which is not the cdr_csv layout" + MAPPING_HINT
    )


# --------------------------------------------------------------------------- produce: send or dead-letter
def test_produce_routes_lines_the_reader_cut_or_escaped_to_the_dead_letter_topic(tmp_path: Path) -> None:
    from streams.produce import DEAD_LETTER, SEND, SKIP, dead_letter_topic_of, dead_letter_value, route

    good = AST_21.decode().splitlines()[3]
    path = tmp_path / "Master.csv"
    long_line = "y" * (2 * MAX_DOC_BYTES)
    path.write_bytes(
        "\n".join(["# comment", good, long_line, "not,a,cdr", HEADER_AST]).encode()
        + b"\nDi\xd3N,x\nNUL\x00\n"
    )
    items = list(read_file(path, "auto", settings=ROME))
    assert [(p.line, route(p)) for p in items] == [
        (1, SKIP), (2, SEND), (3, DEAD_LETTER), (4, SEND), (5, SKIP), (6, DEAD_LETTER), (7, DEAD_LETTER),
    ]  # fmt: skip
    assert json.loads(dead_letter_value(items[2])) == {
        "kind": "cdr",
        "raw": "y" * 200 + "...",
        "reason": f"line longer than {MAX_DOC_BYTES} bytes",
        "source": str(path),
        "position": 3,
    }
    assert json.loads(dead_letter_value(items[5]))["raw"] == "Di\\xd3N,x"
    assert json.loads(dead_letter_value(items[6]))["reason"] == "NUL byte in line (binary data?)"
    # the end of a truncated gzip file is not a CDR either
    path.write_bytes(gzip.compress(AST_21, mtime=0)[:-12])
    assert route(list(read_file(path))[-1]) == DEAD_LETTER
    assert dead_letter_topic_of("X.cdrs") == "X.cdrs-dead-letter"
    assert dead_letter_topic_of("cdrs") == "cdrs-dead-letter"
    assert dead_letter_topic_of("raw") == "raw-dead-letter"


@pytest.mark.kafka
def test_produce_dead_letters_an_overlong_line(kafka_bootstrap: str, tmp_path: Path) -> None:
    from kafka_fixtures import read_topics, unique_names

    from streams.produce import ensure_topics, produce_files

    prefix, _ = unique_names("produce-long")
    cdrs, dead = f"{prefix}cdrs", f"{prefix}cdrs-dead-letter"
    ensure_topics(kafka_bootstrap, {cdrs: 1, dead: 1})
    good = AST_21.decode().splitlines()[3]
    path = tmp_path / "Master.csv"
    path.write_text(f"{good}\n{'z' * (2 << 20)}\n{good}\n")
    summary = produce_files([path], kafka_bootstrap, cdrs, Rules(version="t"))
    assert (summary.sent, summary.dead_lettered, summary.unparsable, summary.skipped) == (2, 1, 0, 0)
    assert summary.dead_letter_topic == dead
    got = read_topics(kafka_bootstrap, [cdrs, dead], idle_s=1.0)
    assert [r.value.decode() for r in got[cdrs]] == [good, good]
    assert [json.loads(r.value) for r in got[dead]] == [
        {"kind": "cdr", "raw": "z" * 200 + "...", "reason": f"line longer than {MAX_DOC_BYTES} bytes",
         "source": str(path), "position": 2}
    ]  # fmt: skip


# --------------------------------------------------------------------------- simulate: rules for CSV
def test_simulate_rules_out_gives_the_csv_formats_the_customers_countries(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app
    from tollguard.simulate import customers_rules, default_profiles

    profiles = default_profiles(2, seed=3)
    assert customers_rules(profiles) == {
        "customers": {
            "cust-001": {"country": "GB", "dids": {"+441617671400": {}}},
            "cust-002": {"country": profiles[1].country, "dids": {d: {} for d in profiles[1].dids}},
        }
    }
    assert customers_rules(profiles[:1], "Europe/London")["ingest"] == {"timezone": "Europe/London"}

    runner = CliRunner()
    day, labels, rules = tmp_path / "day.csv", tmp_path / "labels.jsonl", tmp_path / "rules.yaml"
    result = runner.invoke(app, [
        "simulate", "--scenario", "autodialer", "--customers", "1", "--seed", "3", "--format", "asterisk-csv",
        "--out", str(day), "--labels", str(labels), "--rules-out", str(rules),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_rules(rules).country_of("cust-001") == "GB"
    (label,) = [json.loads(line) for line in labels.read_text().splitlines()]
    assert label["scope"] == {"kind": "cli", "value": "+441617671400"}
    assert '"01617671400"' in day.read_text()  # the CSV carries the national number

    events = tmp_path / "events.jsonl"
    result = runner.invoke(app, [
        "replay", str(day), "--rules", str(rules), "--out", str(events),
        "--rejects", str(tmp_path / "rejects.jsonl"), "-q",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    got = {(e["type"], e["scope"]["value"]) for e in map(json.loads, events.read_text().splitlines())}
    # 30 attempts/min over the attempts' own span from the 30th on: suspended at once, no alert before
    assert got == {("suspension", "+441617671400")}
    # without the customers' countries the national CLI is read as Italian
    out = io.StringIO()
    replay_files([day], Rules(version="t"), out, io.StringIO())
    assert {json.loads(line)["scope"]["value"] for line in out.getvalue().splitlines()} == {"+3901617671400"}

    result = runner.invoke(app, ["simulate", "--help"], terminal_width=200)
    assert "RTP" in result.output and "mod_cdr_csv" in " ".join(result.output.split())


# --------------------------------------------------------------------------- writers: round trip
def _records() -> list[CallDetailRecord]:
    return [
        CallDetailRecord(
            call_id="rt-in",
            customer_id="acme",
            direction=Direction.INBOUND,
            caller="+390612345678",
            callee="+390298765432",
            did="+390298765432",
            start=utc(2025, 3, 14, 9, 0, 0),
            answer=utc(2025, 3, 14, 9, 0, 5),
            end=utc(2025, 3, 14, 9, 2, 5),
            duration_s=125,
            billsec_s=120,
            disposition=Disposition.ANSWERED,
            hangup_cause=16,
            source_ip="198.51.100.7",
            user_agent="Yealink SIP-T46S 66.86.0.15",
            codec="PCMA",
            rtp_in_bytes=1250000,
            rtp_out_bytes=1240000,
            rtp_in_packets=6200,
            rtp_out_packets=6150,
            rtp_lost_packets=12,
            mos=4.41,
            media_start=utc(2025, 3, 14, 9, 0, 3),
        ),
        CallDetailRecord(
            call_id="rt-out-na",
            customer_id="acme",
            direction=Direction.OUTBOUND,
            caller="+390298765432",
            callee="+441632960123",
            did="+390298765432",
            start=utc(2025, 7, 1, 21, 30, 0),
            end=utc(2025, 7, 1, 21, 30, 30),
            duration_s=30,
            billsec_s=0,
            disposition=Disposition.NO_ANSWER,
            hangup_cause=16,
        ),
        CallDetailRecord(
            call_id="rt-out-ans",
            customer_id="acme",
            direction=Direction.OUTBOUND,
            caller="+390298765432",
            callee="+882161234567",
            did="+390298765432",
            start=utc(2025, 7, 1, 22, 0, 0),
            answer=utc(2025, 7, 1, 22, 0, 10),
            end=utc(2025, 7, 1, 22, 10, 10),
            duration_s=610,
            billsec_s=600,
            disposition=Disposition.ANSWERED,
            hangup_cause=16,
            codec="G722",
            rtp_in_bytes=9600000,
            rtp_out_bytes=9500000,
            rtp_in_packets=30000,
            rtp_out_packets=29900,
            rtp_lost_packets=0,
        ),
        CallDetailRecord(
            call_id="rt-int-busy",
            customer_id="default",
            direction=Direction.INTERNAL,
            caller="201",
            callee="202",
            start=utc(2025, 12, 31, 23, 59, 50),
            end=utc(2026, 1, 1, 0, 0, 1),
            duration_s=11,
            billsec_s=0,
            disposition=Disposition.BUSY,
            hangup_cause=17,
        ),
    ]


CALL_FIELDS = ("call_id", "customer_id", "direction", "caller", "callee", "did", "start", "answer", "end",
               "duration_s", "billsec_s", "disposition")  # fmt: skip
EXTRA_FIELDS = {
    "asterisk-csv": (),
    "freeswitch-csv": ("hangup_cause", "codec"),
    "freeswitch-json": (
        "hangup_cause",
        "codec",
        "source_ip",
        "user_agent",
        "rtp_in_bytes",
        "rtp_out_bytes",
        "rtp_in_packets",
        "rtp_out_packets",
        "rtp_lost_packets",
        "mos",
    ),
    "jsonl": tuple(CallDetailRecord.model_fields),
}


@pytest.mark.parametrize("fmt", list(EXTRA_FIELDS))
def test_write_then_parse_round_trip(fmt: str) -> None:
    for original in _records():
        line = write_record(fmt, original, timezone="Europe/Rome")
        assert "\n" not in line
        for parse_fmt in (fmt, "auto"):
            back = parse_line(parse_fmt, line, ROME)
            for name in CALL_FIELDS + EXTRA_FIELDS[fmt]:
                assert getattr(back, name) == getattr(original, name), (fmt, original.call_id, name)
        if fmt == "freeswitch-json":
            assert back.media_start == (original.media_start or original.answer)
            if original.caller.startswith("+"):
                assert '"sip_from_user":"%2B39' in line  # values URL-encoded like encode-values=true
    with pytest.raises(ValueError, match="cannot write CDR format"):
        write_record("auto", _records()[0])


def test_writers_whole_file_reads_back(tmp_path: Path) -> None:
    for fmt in EXTRA_FIELDS:
        path = tmp_path / f"day.{fmt}"
        path.write_text("".join(write_record(fmt, r, timezone="Europe/Rome") + "\n" for r in _records()))
        items = list(read_file(path, "auto", settings=ROME))
        assert [p.record.call_id for p in items if p.record] == [r.call_id for r in _records()], fmt


# --------------------------------------------------------------------------- real samples
@pytest.mark.samples
def test_real_samples() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"real CDR samples not present ({SAMPLES.name} folder missing)")

    def read(name: str) -> list[Parsed]:
        path = SAMPLES / name
        if not path.is_file():
            pytest.skip(f"sample {name} missing")
        return [p for p in read_file(path, "auto") if not p.skipped]

    ast = read("asterisk_cdr_csv_1.txt")
    assert len(accepted(ast)) == 6 and not rejected(ast)
    assert {r.direction for r in accepted(ast)} == {Direction.INBOUND, Direction.INTERNAL}

    custom = read("asterisk_cdr_custom_2.txt")
    assert custom and not accepted(custom)
    assert all("unknown layout" in p.reason and "cdr_custom" in p.reason for p in custom if p.reason)

    fs = read("freeswitch_cdr_csv_3.txt")
    assert len(accepted(fs)) == 4 and not rejected(fs)

    js = read("freeswitch_json_cdr_4.txt")
    (rec,) = accepted(js)
    assert not rejected(js)
    assert rec.codec == "G722"
    assert (rec.rtp_in_bytes, rec.rtp_out_bytes) == (181360.0, 165780.0)
    assert (rec.rtp_in_packets, rec.rtp_out_packets, rec.rtp_lost_packets) == (1031.0, 942.0, 45.0)
    assert rec.billsec_s == 14.54 and rec.hangup_cause == 16
