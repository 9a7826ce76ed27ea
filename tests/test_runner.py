"""The runner's reject record: one shape, and never larger than the broker takes."""

from __future__ import annotations

import hashlib

import orjson

from engine.runner import MAX_RAW_CHARS, Reject


def test_a_reject_of_a_huge_binary_line_is_cut_with_its_size_and_digest():
    raw = "\x01\x02" * 300_000  # 600,000 control characters: 3.6 MB as JSON escapes if kept whole
    data = orjson.loads(Reject("cdrs[0]", 42, raw, "not a CDR").to_json_bytes())
    assert len(Reject("cdrs[0]", 42, raw, "not a CDR").to_json_bytes()) < 512 * 1024
    assert data["raw"] == raw[:MAX_RAW_CHARS]
    assert data["raw_bytes"] == 600_000
    assert data["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    assert (data["kind"], data["source"], data["position"], data["reason"]) == ("cdr", "cdrs[0]", 42, "not a CDR")


def test_a_reject_of_an_ordinary_line_is_whole():
    assert orjson.loads(Reject("a.csv", 3, "x,y", "bad").to_json_bytes()) == {
        "kind": "cdr", "source": "a.csv", "position": 3, "raw": "x,y", "reason": "bad"}
