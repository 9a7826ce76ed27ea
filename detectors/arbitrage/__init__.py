"""``arbitrage``: traffic generated to earn credit or termination revenue (clause 8.2).

Clause 8.2 forbids traffic arbitrage and traffic generated merely to earn advantages or
credit by sending or receiving calls. Three independent checks, one module each, each
over a sliding event-time window of ``window_s`` and each with its own thresholds and scope:

a. **reward / auto top-up** (outbound, :mod:`detectors.arbitrage.reward`): many answered
   calls of near-constant talk time to a few numbers, judged over the **set** of numbers
   the customer feeds: the numbers with ``>= reward_min_number_calls`` calls of coefficient
   of variation of ``billsec_s`` ``<= reward_max_duration_cv`` whose calls share that
   length (pooled CV within the same limit, mean ``>= reward_min_billsec_s``: alarm panels'
   short test calls stay out), their calls counted together against ``reward_min_calls``
   / ``reward_critical_calls``. Scope: ``destination_prefix`` = the called number when the
   set is that number, or a few numbers (``<= reward_max_destinations``) dialled from
   several CLIs; ``cli`` when one CLI feeds several numbers; ``account`` when several CLIs
   feed more than a few.
b. **inbound traffic pumping** to a DID (:mod:`detectors.arbitrage.pumping`): the DID's
   inbound calls are **concentrated**: its top ``pumping_max_origin_ranges`` caller ranges
   (the first ``pumping_prefix_digits`` digits of the caller) carry ``>=
   pumping_min_top_share`` of its calls, ``>= pumping_baseline_factor`` times its usual
   load, with a mean answered duration ``>= pumping_min_acd_s``; their calls against
   ``pumping_min_calls`` / ``pumping_critical_calls`` (other ranges may add calls: a busy
   DID's own callers do not hide an attack). Scope: ``did``.
c. **high-cost (IRSF) traffic to destinations new to the customer** (outbound,
   :mod:`detectors.arbitrage.high_cost`): over ``high_cost_window_s``, answered
   international calls to destinations the customer never called before (any country; in
   its first ``high_cost_cold_start_h`` hours only the ``high_cost_country_codes``, others
   from ``high_cost_cold_start_lines`` parallel lines) and to listed destinations far above
   their own baseline, weighed by the rate table's cost where it prices them and by minutes
   elsewhere, on at least ``high_cost_min_lines`` simultaneous calls: ``minutes /
   high_cost_min_minutes + cost / high_cost_min_cost >= 1`` (and the critical pair).
   Scope: ``outbound_international`` (value: the customer id); the evidence carries
   ``estimated_cost`` and ``currency``.

Warning → ``alert`` (level ``warning``); critical → ``suspension`` (level ``critical``);
each decision's ``check`` (``reward``, ``pumping``, ``high_cost``) keeps the checks'
episodes apart. Emergency, toll-free and allowlisted (``ctx.allow_destinations``)
destinations never count in (a) or (c) (:func:`tollguard.numbers.counted_destination`).
Every decision's evidence carries ``estimated_cost`` and ``currency`` (the rules' rate
table; None with a ``cost_note`` where it prices nothing; pumping prices the calls by their
origin). All thresholds are inclusive (``>=`` / ``<=`` fire).
"""

from detectors.arbitrage.detector import ArbitrageDetector
from detectors.arbitrage.params import ArbitrageParams

__all__ = ["ArbitrageDetector", "ArbitrageParams"]
