"""The canonical CDR refuses what would poison a customer's event-time clock or fake minutes."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from tollguard.testing import make_cdr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"end_s": 10, "start_s": 20, "duration_s": 0, "billsec_s": 0, "answer_s": 10}, "is before start"),
        ({"billsec_s": float("inf")}, "finite number"),
        ({"billsec_s": float("nan")}, "finite number"),
        ({"duration_s": "inf"}, "finite number"),
        ({"billsec_s": 1e9}, "billsec_s 1e+09 s is longer than the call's start-to-end span of 60 s"),
        ({"duration_s": 1e12}, "duration_s 1e+12 s is longer"),
        ({"duration_s": -1}, "greater than or equal to 0"),
        ({"start_s": 0, "end_s": 8 * 86_400}, "more than 604800 s"),
        ({"start_s": 300 * 365 * 86_400, "end_s": 300 * 365 * 86_400 + 60}, "is in the future"),
        ({"start_s": -27 * 365 * 86_400, "end_s": -27 * 365 * 86_400 + 60}, "before 2000"),
    ],
)
def test_refused(overrides, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        make_cdr(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"duration_s": 120, "billsec_s": 100},  # minute-resolution exports: within 60 s of the span
        {"start_s": 0, "end_s": 7 * 86_400},  # exactly the longest call
    ],
)
def test_accepted(overrides):
    assert make_cdr(**overrides).call_id == "call-1"
