"""Statistics of evaluation results, computed from per-image predictions (one job per module).

* :mod:`.bootstrap`    -- deterministic resamples of a split's images; percentile intervals of means, of the
  multi-scale average, of mIoU from per-image confusions, of any statistic; paired differences.
* :mod:`.significance` -- exact McNemar test (binomial on discordant pairs) and Holm's step-down correction.
* :mod:`.seeds`        -- aggregate of repeated trained-probe runs (mean, sample std, min, max, GEO-Bench's IQM).
* :mod:`.fractions`    -- nested, class-stratified, seeded train subsets (label fractions and shots per class).
* :mod:`.robustness`   -- scale-robustness summary of multi-scale kNN (worst scale, drop, AUC over log2 scale).
* :mod:`.calibration`  -- ECE, RMS calibration error and MCE of top-label confidences (15 equal-width bins and a bin
  of its own for confidence 1) with exact bootstrap intervals.
* :mod:`.temperature`  -- temperature scaling fitted on a held-out part of the training split (never the test split).
* :mod:`.fields`       -- record helpers: the ``summary["ci"]``, ``summary["robustness"]``, ``metrics["statistics"]``
  fields and the prediction-sidecar arrays of a run.
* :mod:`.compare`      -- ``satbench compare A B``: paired bootstrap + McNemar between two runs on the same split.
* :mod:`.formatting`   -- ``93.10 [91.20, 95.00]`` and ``mean +- std (n)`` strings for tables.
"""
