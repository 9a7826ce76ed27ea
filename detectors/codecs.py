"""Voice codecs: the IP-layer bandwidth one call needs per direction (clause 3.1 checks).

A VoIP packet on the wire carries the codec payload of one packetisation interval
(``ptime``, 20 ms by default, so 50 packets a second) plus 40 bytes of headers:

* RTP 12 bytes (RFC 3550 §5.1, fixed header without CSRCs or extensions),
* UDP 8 bytes (RFC 768),
* IPv4 20 bytes (RFC 791, no options).

So the IP-layer rate per direction is ``(payload_bytes + 40) * 8 / ptime`` bit/s.
For G.711 at 20 ms: 160 payload bytes + 40 = 200 bytes * 8 * 50 pps = **80.0 kbit/s**.
(The often quoted 87.2 kbit/s adds an Ethernet header and FCS, 18 bytes a frame; the
contract's 60 kbps per call concerns the customer's Internet link, so the IP layer is
what is compared here.)

Switch counters (FreeSWITCH ``rtp_audio_*_raw_bytes``) count RTP header + payload, so
a measured rate adds :data:`IP_UDP_OVERHEAD_BYTES` (28) per packet to reach the IP layer.

| codec | payload kbit/s | bytes / 20 ms | IP kbit/s per direction | source |
| --- | --- | --- | --- | --- |
| G.711 A/µ-law (PCMA, PCMU) | 64 | 160 | 80.0 | ITU-T G.711 |
| G.722 | 64 | 160 | 80.0 | ITU-T G.722 (RTP clock 8000, RFC 3551) |
| G.726-32 | 32 | 80 | 48.0 | ITU-T G.726 |
| G.729 / G.729A | 8 | 20 | 24.0 | ITU-T G.729 |
| GSM 06.10 full rate | 13.2 | 33 | 29.2 | ETSI GSM 06.10, RFC 3551 §4.5.8 |
| iLBC (20 ms mode) | 15.2 | 38 | 31.2 | RFC 3951 |
| Opus (variable; taken as 32) | 32 | 80 | 48.0 | RFC 6716 / RFC 7587, operator's figure |

Examples
--------
>>> needed_kbps("PCMA")
80.0
>>> needed_kbps("g729a"), needed_kbps("GSM"), needed_kbps("opus")
(24.0, 29.2, 48.0)
>>> needed_kbps("PCMU@8000h@20i"), needed_kbps("unknown-codec")
(80.0, None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: RTP (12, RFC 3550) + UDP (8, RFC 768) + IPv4 (20, RFC 791) header bytes per packet.
HEADER_BYTES = 40
#: RTP header bytes per packet (RFC 3550 §5.1): inside the switch's byte counters.
RTP_HEADER_BYTES = 12
#: IPv4 + UDP header bytes per packet: *not* in the switch's byte counters, added to measure link use.
IP_UDP_OVERHEAD_BYTES = HEADER_BYTES - RTP_HEADER_BYTES
#: Packetisation interval assumed when a CDR does not say (the SDP default of most endpoints), ms.
DEFAULT_PTIME_MS = 20.0


@dataclass(frozen=True, slots=True)
class Codec:
    """One codec's payload rate and where the figure comes from.

    Attributes
    ----------
    name : str
        Canonical name (``"G711"``, ``"G729"``, ...).
    payload_kbps : float
        Codec bit rate, kbit/s, without any header.
    source : str
        The standard that fixes the rate.
    """

    name: str
    payload_kbps: float
    source: str

    def payload_bytes(self, ptime_ms: float = DEFAULT_PTIME_MS) -> float:
        """Payload bytes in one packet of ``ptime_ms`` milliseconds."""
        return self.payload_kbps * ptime_ms / 8.0

    def ip_kbps(self, ptime_ms: float = DEFAULT_PTIME_MS) -> float:
        """IP-layer kbit/s per direction: ``(payload + 40 header bytes) * 8 / ptime``, rounded to 0.1."""
        return round((self.payload_bytes(ptime_ms) + HEADER_BYTES) * 8.0 / ptime_ms, 1)


#: Canonical codecs by name.
CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("G711", 64.0, "ITU-T G.711"),
        Codec("G722", 64.0, "ITU-T G.722 (64 kbit/s mode)"),
        Codec("G726", 32.0, "ITU-T G.726 (32 kbit/s mode)"),
        Codec("G729", 8.0, "ITU-T G.729"),
        Codec("GSM", 13.2, "ETSI GSM 06.10 full rate (33-byte frames, RFC 3551)"),
        Codec("ILBC", 15.2, "RFC 3951 iLBC, 20 ms mode (38-byte frames)"),
        Codec("OPUS", 32.0, "RFC 6716 Opus is variable rate; 32 kbit/s wideband voice assumed"),
    )
}

#: Names switches and SDP use (upper case, punctuation removed) → canonical codec name.
ALIASES: dict[str, str] = {
    "PCMA": "G711",
    "PCMU": "G711",
    "G711": "G711",
    "G711A": "G711",
    "G711U": "G711",
    "G711ALAW": "G711",
    "G711ULAW": "G711",
    "ALAW": "G711",
    "ULAW": "G711",
    "G722": "G722",
    "G726": "G726",
    "G72632": "G726",
    "G729": "G729",
    "G729A": "G729",
    "G729B": "G729",
    "G729AB": "G729",
    "GSM": "GSM",
    "GSMFR": "GSM",
    "ILBC": "ILBC",
    "OPUS": "OPUS",
}


@lru_cache(maxsize=1024)
def lookup(codec: str | None) -> Codec | None:
    """The :class:`Codec` for a switch's codec name, or ``None`` when unknown or missing.

    Accepts SDP / FreeSWITCH spellings: case-insensitive, ``"PCMU/8000"``,
    ``"G722@8000h@20i"``, ``"G.729a"``, ``"g711-alaw"``.

    >>> lookup("G.729a").name
    'G729'
    >>> lookup(None) is None
    True
    """
    if not codec:
        return None
    head = re.split(r"[@/;]", codec.strip(), maxsplit=1)[0]
    key = re.sub(r"[^A-Z0-9]", "", head.upper())
    name = ALIASES.get(key)
    return CODECS[name] if name is not None else None


def needed_kbps(codec: str | None, ptime_ms: float = DEFAULT_PTIME_MS) -> float | None:
    """IP-layer kbit/s one direction of a call with ``codec`` needs, or ``None`` when unknown.

    Parameters
    ----------
    codec : str or None
        Codec name as the switch wrote it.
    ptime_ms : float
        Packetisation interval in milliseconds (default 20 ms, 50 packets/s).
    """
    found = lookup(codec)
    return None if found is None else found.ip_kbps(ptime_ms)
