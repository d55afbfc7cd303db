"""Loss functions.

* :mod:`lhl.losses.had` — HAD's DB-HAD / SG-HAD losses as in the paper (Sec. 4).
* :mod:`lhl.losses.had_reference` — the same losses as the authors' released code computes
  them (``variant: reference``; items 1-8 of docs/deviations.md).
"""
