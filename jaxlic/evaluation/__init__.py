"""Rate-distortion evaluation: classical codecs, BD-rate, per-image matched-rate comparisons, plots.

* :mod:`jaxlic.evaluation.codecs`: classical codecs at their best settings, measured on real files.
* :mod:`jaxlic.evaluation.matched`: per-image comparisons at matched rate, with bootstrap CIs, of
  models against codecs (:func:`compare`) or against a baseline model (:func:`versus`).
* :mod:`jaxlic.evaluation.bdrate`: Bjøntegaard deltas and curves in CompressAI's JSON format.
* :mod:`jaxlic.evaluation.rd`: the engine of ``jaxlic eval`` and ``jaxlic compare``.
* :mod:`jaxlic.evaluation.plots`: rate-distortion plots (averaged curves: for plots only).
"""

from jaxlic.evaluation.matched import bootstrap_ci, compare, gain_at_rate, matched_rate, value_at_rate, versus
