"""The input line every `satbench run` prints: the normalisation used and the range it gives, from the record."""

from __future__ import annotations

from satbench.records.inputs import input_line


def test_the_range_is_pixels_minus_mean_over_std():
    rec = {"extractor": {"normalization": {"name": "uc_merced", "mean": [0.482, 0.488, 0.449],
                                           "std": [0.116, 0.102, 0.103]}}}
    line = input_line(rec)
    assert line.startswith("input: [0, 1] pixels, normalised with uc_merced (mean 0.482 0.488 0.449, std 0.116 0.102 "
                           "0.103)")
    lo, hi = -0.488 / 0.102, (1 - 0.449) / 0.103
    assert line.endswith(f"-> range [{lo:.2f}, {hi:.2f}]")


def test_the_dataset_entry_is_used_when_the_extractor_has_none_and_absence_is_said():
    rec = {"dataset": {"normalization_used": {"name": "computed:myset:train", "mean": [0.5] * 3, "std": [0.25] * 3}}}
    assert "computed:myset:train" in input_line(rec) and input_line(rec).endswith("range [-2.00, 2.00]")
    assert input_line({}) == "input: normalisation not recorded"
