"""The operator's own switches (issue 12): Kamailio acc, 3CX, CUCM and declarative CSV mappings.

Fixtures are the project's own lines in each layout (fictitious numbers); the real samples in
``../shared/data/cdr-samples`` are replayed too (skipped when absent). The Kamailio log lines are
in the form ``infra/kamailio/kamailio.cfg`` writes them (``customer``, ``caller``, ``callee`` extras;
a BYE's callee is empty).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.registry import load_rules, parse_rules
from streams.replay import Replay
from tollguard.adapters import MAPPING_HINT, Parsed, parse_line, read_file
from tollguard.adapters.cucm import COLUMNS as CUCM_COLUMNS
from tollguard.rules import Rules, did_owners
from tollguard.rules_template import render_rules_yaml

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
E0 = 1741946400  # T0 in unix seconds
RULES = """
ingest:
  timezone: Europe/Rome
customers:
  acme: {country: IT, dids: {"+390298765432": {capacity: 5}}}
  globex: {country: IT, dids: {"+390611112222": {}}}
"""


def _rules(text: str = RULES) -> Rules:
    return parse_rules(text)


def _read(tmp_path: Path, text: str, rules: Rules | None = None, fmt: str = "auto") -> list[Parsed]:
    rules = rules or _rules()
    path = tmp_path / "cdrs.txt"
    path.write_text(text)
    return list(read_file(path, fmt, rules.ingest, rules.country_of, did_owners(rules).get))


def _by_line(items: list[Parsed]) -> dict[int, Parsed]:
    return {p.line: p for p in items}


def _acc(kind: str, t: int, method: str, call_id: str, code: int, extra: str) -> str:
    reason = {200: "OK", 407: "Proxy Authentication Required", 486: "Busy Here"}.get(code, "Other")
    return (f" 2(9721) INFO: acc [acc.c:287]: acc_log_request(): ACC: {kind}: timestamp={t};method={method};"
            f"from_tag=ft-{call_id};to_tag=tt-{call_id};call_id={call_id}@127.0.0.1;code={code};reason={reason};"
            f"{extra};src_ip=127.0.0.1;user_agent=SIPp tollguard-test")


ACME_OUT = "customer=acme;caller=+390212345600;callee=+97912345678"
BYE_EXTRA = "customer=acme;caller=+390212345600;callee="
KAMAILIO_LOG = "\n".join([
    _acc("transaction answered", E0, "INVITE", "c1", 200, ACME_OUT),                          # 1 paired
    _acc("transaction answered", E0 + 5, "INVITE", "c3", 200, "caller=0612345678;callee=0298765432"),  # 2
    _acc("request failed", E0 + 10, "INVITE", "c2", 407, ACME_OUT),                           # 3 challenge
    _acc("request failed", E0 + 11, "INVITE", "c2", 486, ACME_OUT),                           # 4 busy CDR
    _acc("transaction answered", E0 + 65, "BYE", "c1", 200, BYE_EXTRA),                       # 5 c1's CDR
    _acc("transaction answered", E0 + 70, "BYE", "c9", 200, BYE_EXTRA),                       # 6 no INVITE
    _acc("transaction answered", E0 + 125, "BYE", "c3", 200, "caller=0298765432;callee="),    # 7 c3's CDR
    _acc("transaction answered", E0 + 130, "INVITE", "c4", 200, ACME_OUT),                    # 8 no BYE
]) + "\n"


def test_kamailio_acc_log_pairs_invite_and_bye(tmp_path: Path) -> None:
    items = _read(tmp_path, KAMAILIO_LOG)
    assert sorted(p.line for p in items) == list(range(1, 9))  # every line exactly once
    got = _by_line(items)
    assert sorted(n for n, p in got.items() if p.paired) == [1, 2, 3]
    c1 = got[5].record
    assert c1 is not None
    assert (c1.call_id, c1.customer_id, c1.direction, c1.caller, c1.callee, c1.did) == (
        "c1@127.0.0.1", "acme", "outbound", "+390212345600", "+97912345678", "+390212345600")
    assert (c1.start, c1.answer, c1.end, c1.duration_s, c1.billsec_s) == (T0, T0, T0 + timedelta(seconds=65), 65, 65)
    assert (c1.disposition, c1.hangup_cause, c1.source_ip, c1.user_agent) == (
        "ANSWERED", 16, "127.0.0.1", "SIPp tollguard-test")
    busy = got[4].record
    assert busy is not None
    assert (busy.disposition, busy.hangup_cause, busy.start, busy.end, busy.answer, busy.billsec_s) == (
        "BUSY", 17, T0 + timedelta(seconds=11), T0 + timedelta(seconds=11), None, 0)
    # no customer extra: the rules' owner of the called DID, so inbound, national numbers read for IT
    c3 = got[7].record
    assert c3 is not None
    assert (c3.customer_id, c3.direction, c3.caller, c3.callee, c3.did, c3.duration_s) == (
        "acme", "inbound", "+390612345678", "+390298765432", "+390298765432", 120)
    assert got[6].reason == "kamailio-acc: BYE of Call-ID c9@127.0.0.1 without its answered INVITE in this file"
    assert got[8].reason == (
        "kamailio-acc: INVITE answered at 2025-03-14 10:02:10 UTC (Call-ID c4@127.0.0.1) has no BYE in this file: "
        "the call was still up, or its BYE is in another file")


def test_kamailio_acc_replay_counts_paired_lines(tmp_path: Path) -> None:
    path = tmp_path / "kamailio.log"
    path.write_text(KAMAILIO_LOG)
    run = Replay(_rules(), io.StringIO(), io.StringIO())
    run.run_file(path)
    summary = run.finish()
    # every line accepted or rejected: the paired transactions are merged legs of their calls
    assert (summary.accepted, summary.rejected, summary.paired, summary.lines_read) == (6, 2, 3, 8)
    assert (summary.merged_legs, summary.calls) == (3, 3)


def test_kamailio_acc_single_message_needs_pairing() -> None:
    rules = _rules()
    busy = parse_line("auto", _acc("request failed", E0, "INVITE", "x", 486, ACME_OUT), rules.ingest,
                      rules.country_of)
    assert (busy.disposition, busy.customer_id) == ("BUSY", "acme")
    with pytest.raises(Exception, match="one INVITE 200 transaction is not a CDR"):
        parse_line("kamailio-acc", _acc("transaction answered", E0, "INVITE", "x", 200, ACME_OUT))


def test_kamailio_acc_table_with_header_in_local_time(tmp_path: Path) -> None:
    text = (
        "id,method,from_tag,to_tag,callid,sip_code,sip_reason,time,src_user,src_domain,src_ip,dst_ouser,dst_user,"
        "dst_domain\n"
        "1,INVITE,f1,t1,db-1,200,OK,2025-03-14 10:00:00,0612345678,example.net,192.0.2.10,0611112222,0611112222,"
        "example.net\n"
        "2,BYE,t1,f1,db-1,200,OK,2025-03-14 10:02:00,0611112222,example.net,192.0.2.11,,,example.net\n"
    )
    items = _read(tmp_path, text)
    assert [(p.line, p.skipped, p.paired) for p in items] == [(1, True, False), (2, True, True), (3, False, False)]
    cdr = items[2].record
    assert cdr is not None
    assert (cdr.customer_id, cdr.direction, cdr.caller, cdr.callee, cdr.did, cdr.source_ip) == (
        "globex", "inbound", "+390612345678", "+390611112222", "+390611112222", "192.0.2.10")
    assert (cdr.start, cdr.end) == (T0 - timedelta(hours=1), T0 - timedelta(hours=1) + timedelta(minutes=2))


THREECX = (
    'Call 1,0000017A00000001_1,00:02:00,2025/03/14 10:00:00,2025/03/14 10:00:05,2025/03/14 10:02:05,'
    'TerminatedBySrc,0612345678,Ext.201,10000,201,0298765432,,,,,,,,"Chain: 0612345678,Ext.201,",External,'
    'Internal,Internal,a,b,c,\n'
    'Call 2,0000017A00000002_2,00:01:00,2025/03/14 11:00:00,2025/03/14 11:00:10,2025/03/14 11:01:10,'
    'TerminatedByDst,Ext.201,00393471234567,201,10000,00393471234567,,,,,,,,"Chain: Ext.201,00393471234567,",'
    'Internal,External,External,a,b,c,\n'
    'Call 3,0000017A00000003_3,,2025/03/14 12:00:00,,2025/03/14 12:00:15,Failed_Cancelled,Ext.201,Ext.202,201,'
    '202,202,,,,,,,,,Internal,Internal,Internal,a,b,c,\n'
)


def test_3cx(tmp_path: Path) -> None:
    a, b, c = (p.record for p in _read(tmp_path, THREECX))
    assert a is not None and b is not None and c is not None
    assert (a.call_id, a.customer_id, a.direction, a.caller, a.callee, a.did) == (
        "0000017A00000001_1", "acme", "inbound", "+390612345678", "+390298765432", "+390298765432")
    assert (a.start, a.answer, a.end, a.duration_s, a.billsec_s, a.disposition) == (
        T0 - timedelta(hours=1), T0 - timedelta(hours=1) + timedelta(seconds=5),
        T0 - timedelta(hours=1) + timedelta(seconds=125), 125, 120, "ANSWERED")
    assert (b.customer_id, b.direction, b.caller, b.callee, b.did, b.billsec_s) == (
        "default", "outbound", "201", "+393471234567", None, 60)
    assert (c.direction, c.caller, c.callee, c.disposition, c.answer, c.duration_s) == (
        "internal", "201", "202", "NO ANSWER", None, 15)


def _cucm_row(**values: object) -> str:
    row = [""] * len(CUCM_COLUMNS)
    for name, value in values.items():
        row[CUCM_COLUMNS.index(name)] = str(value)
    return ",".join(row)


def test_cucm_with_its_header_rows(tmp_path: Path) -> None:
    header = ",".join(f'"{c}"' for c in CUCM_COLUMNS)
    types = ",".join("INTEGER" if i % 3 else "VARCHAR(50)" for i in range(len(CUCM_COLUMNS)))
    common = {"globalCallID_callManagerId": 1, "origCause_value": 0}
    text = "\n".join([
        header, types,
        _cucm_row(cdrRecordType=1, globalCallID_callId=1001, dateTimeOrigination=E0, origIpAddr=-1139627840,
                  callingPartyNumber=2001, finalCalledPartyNumber="00442079460000", dateTimeConnect=E0 + 5,
                  dateTimeDisconnect=E0 + 65, duration=60, destCause_value=16, pkid="leg-a", **common),
        _cucm_row(cdrRecordType=1, globalCallID_callId=1002, dateTimeOrigination=E0, callingPartyNumber="0612345678",
                  finalCalledPartyNumber="0298765432", dateTimeConnect=0, dateTimeDisconnect=E0 + 20, duration=0,
                  destCause_value=17, pkid="leg-b", **common),
        _cucm_row(cdrRecordType=2, globalCallID_callId=1003, dateTimeOrigination=E0, **common),
    ]) + "\n"
    items = _read(tmp_path, text)
    assert [p.skipped for p in items] == [True, True, False, False, False]
    out, inbound = items[2].record, items[3].record
    assert out is not None and inbound is not None
    assert (out.call_id, out.leg_id, out.customer_id, out.direction, out.caller, out.callee) == (
        "1-1001", "leg-a", "default", "outbound", "2001", "+442079460000")
    assert (out.start, out.answer, out.end, out.duration_s, out.billsec_s, out.hangup_cause, out.source_ip) == (
        T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=65), 65, 60, 16, "192.168.18.188")
    assert (inbound.customer_id, inbound.direction, inbound.did, inbound.disposition, inbound.hangup_cause) == (
        "acme", "inbound", "+390298765432", "BUSY", 17)
    assert items[4].reason == "cucm: a CMR (media statistics) record, not a CDR (cdrRecordType 1)"


def _template_mapping_rules(extra: str = "") -> Rules:
    """The rules template's commented ingest.mappings example, uncommented: the documentation works."""
    text = render_rules_yaml(load_rules(None).__class__())
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "#   mappings:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #  "):
            break
        block.append("  " + line[len("  #  "):])
    return parse_rules("ingest:\n" + "\n".join(block) + "\n" + extra)


def test_mapping_from_the_template_reads_cdrstats(tmp_path: Path) -> None:
    rules = _template_mapping_rules()
    (m,) = rules.ingest.mappings
    header = ",".join(m.columns)
    row = ("127.0.0.1,1,call-1,0612345678,Name,+34915550101,34,,,2025-03-14 11:00:00,55,50,,,,16,,2,,cust-es,,,,,{}")
    items = _read(tmp_path, header + "\n" + row + "\n", rules)
    assert items[0].skipped
    cdr = items[1].record
    assert cdr is not None
    assert (cdr.call_id, cdr.customer_id, cdr.direction, cdr.caller, cdr.callee) == (
        "call-1", "cust-es", "outbound", "+390612345678", "+34915550101")
    start = T0  # 11:00 in Madrid (CET) is 10:00 UTC
    assert (cdr.start, cdr.answer, cdr.end, cdr.duration_s, cdr.billsec_s, cdr.disposition, cdr.hangup_cause) == (
        start, start + timedelta(seconds=5), start + timedelta(seconds=55), 55, 50, "ANSWERED", 16)


def test_mapping_by_position_and_strptime(tmp_path: Path) -> None:
    rules = parse_rules(
        "ingest:\n  mappings:\n    - name: billing\n      column_count: 5\n      delimiter: ';'\n"
        "      fields: {caller: 1, callee: 2, start: 3, end: 4, customer_id: 5}\n"
        "      time_format: '%d/%m/%Y %H:%M:%S'\n      timezone: Europe/Rome\n"
        + RULES.split("\n", 3)[3]  # the customers: acme owns +390298765432
    )
    items = _read(tmp_path, "0612345678;0298765432;14/03/2025 11:00:00;14/03/2025 11:01:00;acme\n", rules)
    cdr = items[0].record
    assert cdr is not None, items[0].reason
    assert (cdr.customer_id, cdr.direction, cdr.did, cdr.start, cdr.end, cdr.disposition) == (
        "acme", "inbound", "+390298765432", T0, T0 + timedelta(minutes=1), "NO ANSWER")


def test_bad_mapping_is_refused_at_its_line() -> None:
    from tollguard.errors import RulesError

    with pytest.raises(RulesError) as err:
        parse_rules("ingest:\n  mappings:\n    - name: x1\n      column_count: 3\n"
                    "      fields: {caller: 4, callee: 2, start: 1, end: 3}\n")
    assert "ingest.mappings.0" in str(err.value) and "caller: column position 4 outside 1..3" in str(err.value)
    assert ":3:" in str(err.value)


def test_unknown_layout_names_its_header_and_the_mapping() -> None:
    with pytest.raises(Exception) as err:
        parse_line("auto", "switch,cdr_source_type,callid,caller_id_number,caller_id_name,destination_number,dialcode")
    reason = str(err.value)
    assert "a header row naming 7 columns (switch, cdr_source_type, callid, caller_id_number, caller_id_name, " \
           "destination_number, …) that no layout has" in reason
    assert reason.endswith(MAPPING_HINT)


# --------------------------------------------------------------------------- the real samples
SAMPLE_MAPPINGS = """
  mappings:
    - name: ast-custom
      columns: [clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, start, answer, end, duration,
                billsec, disposition, amaflags, accountcode, uniqueid, userfield, sequence]
      fields: {caller: src, callee: dst, start: start, answer: answer, end: end, duration_s: duration,
               billsec_s: billsec, disposition: disposition, customer_id: accountcode, call_id: uniqueid}
"""

#: sample -> (accepted, rejected, extra rules); every supported layout replays with 0 rejects.
SAMPLES_EXPECTED = {
    "asterisk_cdr_csv_1.txt": (6, 0, ""),
    "asterisk_cdr_custom_2.txt": (3, 0, SAMPLE_MAPPINGS),
    "freeswitch_cdr_csv_3.txt": (4, 0, ""),
    "freeswitch_json_cdr_4.txt": (1, 0, ""),
    "kamailio_acc_db_5.txt": (9, 0, ""),  # 5 CDRs, 4 transactions paired into them
    "kamailio_acc_syslog_6.txt": (2, 0, ""),
    "3cx_cdr_7.txt": (5, 0, ""),
    "cdrstats_import_8.txt": (3, 0, None),  # the template's mapping
    "cucm_cdr_cmr_header_10.txt": (0, 0, ""),  # header rows only (no public CUCM data rows)
    "freeswitch_cdr_sqlite_9.txt": (2, 0, ""),  # mod_cdr_sqlite: CREATE TABLE skipped, 14-value INSERTs
}


@pytest.mark.samples
@pytest.mark.parametrize("name", sorted(SAMPLES_EXPECTED))
def test_each_real_sample_of_a_supported_layout_replays_without_rejects(samples: Path, name: str) -> None:
    accepted, rejected, extra = SAMPLES_EXPECTED[name]
    rules = _template_mapping_rules() if extra is None else parse_rules("ingest:\n" + extra if extra else "{}")
    out, rejects = io.StringIO(), io.StringIO()
    run = Replay(rules, out, rejects)
    run.run_file(samples / name)
    summary = run.finish()
    assert (summary.accepted, summary.rejected) == (accepted, rejected), rejects.getvalue()


@pytest.mark.samples
def test_kamailio_db_sample_pairs_its_calls(samples: Path) -> None:
    items = [p for p in read_file(samples / "kamailio_acc_db_5.txt") if not p.skipped or p.paired]
    records = [p.record for p in items if p.record is not None]
    assert [(r.call_id, r.disposition.value, r.duration_s) for r in records] == [
        ("6gctvgn638rp4ffo6hg3", "NO ANSWER", 0), ("4035471a-b8c8-4f5b-9079-d97a8ffd0b58", "NO ANSWER", 0),
        ("f40698c8-749c-4325-b618-df6422882716", "ANSWERED", 15), ("6gctvc79iokc6a0f1s77", "ANSWERED", 15),
        ("XVDo4NXTl_LO_p-bUNHpZw..", "ANSWERED", 1)]
    assert sum(p.paired for p in items) == 4
    assert all(re.fullmatch(r"[0-9a-zA-Z_.-]+", r.caller) for r in records)


@pytest.mark.kafka
def test_produce_sends_the_paired_kamailio_cdrs_as_canonical_json(kafka_bootstrap: str, tmp_path: Path) -> None:
    import json

    from kafka_fixtures import read_topics, run_cli, unique_names

    prefix, _ = unique_names("kamailio-produce")
    log = tmp_path / "kamailio.log"
    log.write_text(KAMAILIO_LOG)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    run_cli(["produce", str(log), "--topic", f"{prefix}cdrs", "--rules", str(rules), "-q"], kafka_bootstrap)
    records = read_topics(kafka_bootstrap, [f"{prefix}cdrs"], idle_s=1.0)[f"{prefix}cdrs"]
    sent = sorted((r.value.decode() for r in records), key=len)
    cdrs = [json.loads(v) for v in sent if v.startswith("{")]
    assert sorted((c["call_id"], c["customer_id"], c["disposition"]) for c in cdrs) == [
        ("c1@127.0.0.1", "acme", "ANSWERED"), ("c2@127.0.0.1", "acme", "BUSY"), ("c3@127.0.0.1", "acme", "ANSWERED")]
    # the two unpairable records go as they are, for the worker to dead-letter with the reason
    assert len(records) == 5 and sum("ACC:" in v for v in sent) == 2


def test_sql_dump_statements_are_skipped_and_sqlite_inserts_read(tmp_path: Path) -> None:
    text = (
        "-- a dump\nCREATE TABLE cdr (caller_id_name VARCHAR, caller_id_number VARCHAR);\nBEGIN TRANSACTION;\n"
        "INSERT INTO \"cdr\" VALUES('Outbound Call','0612345678','0298765432','default','2025-03-14 11:00:00',"
        "'2025-03-14 11:00:05','2025-03-14 11:01:05',65,60,'NORMAL_CLEARING',16,'uuid-1','','acme');\nCOMMIT;\n"
    )
    items = _read(tmp_path, text)
    assert [p.skipped for p in items] == [True, True, True, False, True]
    cdr = items[3].record
    assert cdr is not None, items[3].reason
    assert (cdr.call_id, cdr.customer_id, cdr.caller, cdr.callee, cdr.hangup_cause, cdr.start, cdr.billsec_s) == (
        "uuid-1", "acme", "+390612345678", "+390298765432", 16, T0, 60)


def test_one_message_of_a_format_without_account_code_finds_its_customer() -> None:
    """The stream's parse agent: one line at a time, the customer from the rules' DIDs (owner_lookup)."""
    from tollguard.rules import owner_lookup

    rules = _rules()
    assert owner_lookup(rules) is owner_lookup(rules)  # built once per rules object
    cdr = parse_line("auto", THREECX.splitlines()[0], rules.ingest, rules.country_of, owner_lookup(rules))
    assert (cdr.customer_id, cdr.direction, cdr.did) == ("acme", "inbound", "+390298765432")


def test_kamailio_dialog_cdr_lines_are_cdrs(tmp_path: Path) -> None:
    """acc with cdr_enable / cdr_log_enable (dialog module): one line per call, as Kamailio 5.6 writes it."""
    cdr_line = (" 2(4091) INFO: acc [acc_cdr.c:395]: log_write_cdr(): start_time=1741946400.549; "
                "end_time=1741946460.855; duration=60.306; callid=c7@127.0.0.1; customer=acme; "
                "caller=sip:+390212345600@127.0.0.1:25081; callee=sip:+97912345678@127.0.0.1")
    no_callid = " 2(4091) INFO: acc [acc_cdr.c:395]: log_write_cdr(): start_time=1741946400; end_time=1741946410; " \
                "duration=10; caller=sip:0612345678@192.0.2.1; callee=sip:0298765432@192.0.2.2"
    first, second = (p.record for p in _read(tmp_path, cdr_line + "\n" + no_callid + "\n"))
    assert first is not None and second is not None
    assert (first.call_id, first.customer_id, first.direction, first.caller, first.callee) == (
        "c7@127.0.0.1", "acme", "outbound", "+390212345600", "+97912345678")
    start = T0 + timedelta(seconds=0.549)
    assert (first.start, first.answer, first.end, first.billsec_s, first.disposition) == (
        start, start, T0 + timedelta(seconds=60.855), pytest.approx(60.306), "ANSWERED")
    assert (second.customer_id, second.direction, second.did, second.call_id[:4]) == (
        "acme", "inbound", "+390298765432", "kam-")
    rules = _rules()
    assert parse_line("auto", cdr_line, rules.ingest, rules.country_of).call_id == "c7@127.0.0.1"
