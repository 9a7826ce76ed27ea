"""``arbitrage``: traffic generated to earn credit or termination revenue (clause 8.2).

Clause 8.2 forbids traffic arbitrage and traffic generated merely to earn advantages or
credit by sending or receiving calls. Three independent checks, one module each, each
over a sliding event-time window of ``window_s`` and each with its own thresholds and scope:

a. **reward / auto top-up** (outbound, :mod:`detectors.arbitrage.reward`): many answered
   calls to a few destination numbers with near-constant talk time. Per destination
   number: ``calls >= reward_min_calls`` and coefficient of variation of ``billsec_s``
   ``<= reward_max_duration_cv``. Scope: ``destination_prefix`` = the number itself;
   ``cli`` when 2 to ``reward_max_destinations`` numbers qualify together and one CLI
   dials them all; when more numbers qualify than that the pattern is no longer "a few
   numbers" and the scope widens to ``cli`` (one CLI) or ``account``.
b. **inbound traffic pumping** to a DID (:mod:`detectors.arbitrage.pumping`):
   ``calls >= pumping_min_calls`` inbound calls to one DID from at most
   ``pumping_max_origin_ranges`` caller ranges (the first ``pumping_prefix_digits``
   digits of the caller) with a mean answered duration ``>= pumping_min_acd_s``. Scope: ``did``.
c. **high-cost minutes far above the customer's history** (outbound, IRSF,
   :mod:`detectors.arbitrage.high_cost`): answered minutes to international numbers of
   ``high_cost_country_codes`` in the window ``>= high_cost_min_minutes`` and
   ``>= high_cost_history_factor`` times the customer's own baseline (EWMA of those
   minutes per closed UTC hour, scaled to the window). Scope: ``outbound_international``
   (value: the customer id).

Warning → ``alert`` (level ``warning``); critical → ``suspension`` (level ``critical``);
each decision's ``check`` (``reward``, ``pumping``, ``high_cost``) keeps the checks'
episodes apart. Emergency, toll-free and allowlisted (``ctx.allow_destinations``)
destinations never count in (a) or (c) (:func:`tollguard.numbers.counted_destination`).
All thresholds are inclusive (``>=`` / ``<=`` fire).
"""

from detectors.arbitrage.detector import ArbitrageDetector
from detectors.arbitrage.params import ArbitrageParams

__all__ = ["ArbitrageDetector", "ArbitrageParams"]
