"""Loss functions.

* :mod:`lhl.losses.had` — HAD's DB-HAD / SG-HAD losses as in the paper (SPEC §3).
* :mod:`lhl.losses.had_reference` — the same losses as the authors' released code computes
  them (``variant: reference``; SPEC §3 items 1-8).
"""
