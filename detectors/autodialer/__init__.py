"""``autodialer``: automatically generated outbound campaigns and Wangiri one-ring calls (clause 8.2).

Clause 8.2 forbids automatically generated outbound call campaigns (and clause 8.7
call-centre activity against regulations; a customer authorised to run a call centre
is allowlisted in the rules file, which disables this detector for it).

Per dialling CLI (:func:`detectors.base.customer_number`: the outbound call's ``did``, else
its ``caller``) the detector keeps the attempts by start time in two sliding event-time
windows: the last ``window_s`` seconds (the *burst* window) and the last
``sustained_window_s`` seconds (the *campaign* window). Calls to emergency, toll-free
and allowlisted destinations (:func:`tollguard.numbers.counted_destination`) are never
attempts: they count in no rate, sign or decision.

The attempt rate of a window is measured over the attempts' own span,
``(attempts - 1) / (last start - first start)`` (at least one second): 480 attempts placed
in one minute read 480/min whatever the window's length. Five dialer signs:

* ``distinct``: distinct destinations / attempts ``>= min_distinct_share``;
* ``sequential``: attempts whose callee is within ±1..±``sequential_max_step`` of another
  callee (a number-block sweep) / attempts ``>= min_sequential_share``;
* ``low_asr``: answered / attempts ``<= max_asr``;
* ``short_acd``: mean billsec of answered attempts ``<= max_acd_s`` (no answer: no sign);
* ``regular_gaps``: coefficient of variation of the gaps between attempt starts
  ``<= max_gap_cv`` (a dialer paces; people do not).

In the campaign window the two signs about the order of attempts are shares of attempts that
showed them in their burst window when dialled: ``sequential`` (a callee with a block neighbour
there, ``>= min_sequential_share``) and ``regular_gaps`` (the burst window paced, ``>=
min_regular_share``). An hour's gap CV would not do: one ordinary call of the CLI before the
campaign, or a pause, is a gap that hides an hour of paced dialling.

Dialer checks (one decision kind, ``autodialer``; every comparison inclusive), one module each:

* **burst** (:mod:`detectors.autodialer.burst`), over the burst window once it holds
  ``min_attempts``: rate ``>= warn_attempts_per_min`` with ``>= warn_signs`` signs → ``alert``; rate
  ``>= critical_attempts_per_min`` with ``>= critical_signs`` signs → ``suspension`` of the CLI;
* **sustained** (:mod:`detectors.autodialer.sustained`), over the campaign window once it
  holds ``sustained_min_attempts``: a campaign calls many numbers (the ``distinct`` sign is required) at a rate
  ``>= sustained_attempts_per_min`` with ``>= critical_signs`` signs; held over
  ``sustained_warn_s`` (the span of its attempts) → ``alert``, over ``sustained_critical_s``
  → ``suspension``. A moderate campaign that never bursts is suspended this way.

Wangiri (one-ring) calls (:mod:`detectors.autodialer.wangiri`, fast and slow): unanswered
(``NO ANSWER``) outbound calls that rang at most ``one_ring_max_s`` (``duration_s``). Burst:
``>= wangiri_warn_calls`` in the burst window → alert; ``>= wangiri_critical_calls`` that are
also ``>= wangiri_min_share`` of its attempts → suspension. Sustained: ``>=
wangiri_sustained_calls`` one-ring calls in the campaign window, spread over ``>=
wangiri_sustained_s``, ``>= wangiri_min_share`` of its attempts, to distinct numbers (the
``distinct`` sign) → suspension.

Each kind of decision (dialer, wangiri) is returned once per level per episode; the
episode is the ISO time (UTC) of the attempt that first reached the level. A dialer episode
ends when neither window holds enough attempts to be judged, a Wangiri episode when neither
holds a one-ring call. Every decision's evidence names the check (``pace``: ``burst`` or
``sustained``), the campaign (the campaign window: first and last start, duration, attempts,
rate, signs) and ``estimated_cost`` / ``currency`` of the deciding window's attempts (the
rules' rate table; None when none of them is priced).

Cost per CDR: one number classification (memoised), O(``sequential_max_step``) dictionary
look-ups and two insertions into start-sorted attempt lists (at their ends, for calls released
in end order); rates, ASR, ACD and gap CVs come from running sums (costs are priced only when
a decision is made). State per CLI is bounded by the campaign window.
"""

from detectors.autodialer.attempts import measure, rate_per_min
from detectors.autodialer.detector import AutodialerDetector
from detectors.autodialer.params import AutodialerParams

__all__ = ["AutodialerDetector", "AutodialerParams", "measure", "rate_per_min"]
