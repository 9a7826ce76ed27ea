"""Adapters from switch CDR formats to the canonical :class:`~tollguard.cdr.CallDetailRecord` (DESIGN §3).

Formats: ``asterisk-csv`` (cdr_csv Master.csv, 16/18/21 columns), ``freeswitch-csv``
(mod_cdr_csv templates), ``freeswitch-json`` (mod_json_cdr, URL-encoded or not),
``jsonl`` (the canonical model), ``kamailio-acc`` (acc log and table records, INVITE and
BYE paired into CDRs), ``3cx`` (3CX CDR service), ``cucm`` (Cisco UCM flat files), the
rules' ``ingest.mappings`` (declarative CSV layouts) and ``auto`` (sniffed).

- :func:`parse_line` parses one line / message and raises :class:`RejectError`.
- :func:`read_file` / :func:`read_stream` stream one :class:`Parsed` per line.
- :func:`write_record` writes a record back in any format (simulator, tests).
"""

from tollguard.errors import RejectError, TollguardError

from ._common import MAPPING_HINT, ctx_for
from .core import FORMATS, MAX_DOC_BYTES, Parsed, parse_line, read_file, read_stream, sniff
from .settings import IngestSettings
from .writers import WRITE_FORMATS, write_record

__all__ = [
    "FORMATS",
    "MAPPING_HINT",
    "MAX_DOC_BYTES",
    "WRITE_FORMATS",
    "IngestSettings",
    "Parsed",
    "RejectError",
    "TollguardError",
    "ctx_for",
    "parse_line",
    "read_file",
    "read_stream",
    "sniff",
    "write_record",
]
