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


def test_every_record_states_the_input_range_the_model_saw():
    from satbench.records.results import make_record

    norm = {"name": "imagenet", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    rec = make_record(task="knn", model="m", weights={}, protocol={}, dataset={}, metrics={},
                      extractor={"normalization": norm})
    lo, hi = -0.485 / 0.229, (1 - 0.406) / 0.225
    assert rec["extractor"]["input"] == {"pixels": [0, 1], "normalization": "imagenet",
                                         "range": [round(lo, 4), round(hi, 4)],
                                         "text": f"[0, 1] then imagenet mean/std -> [{lo:.2f}, {hi:.2f}]"}
    seg = make_record(task="segmentation", model="m", weights={}, protocol={}, dataset={}, metrics={},
                      extractor={"normalization": norm, "mean_255": [123.675, 116.28, 103.53]})
    assert seg["extractor"]["input"]["text"].startswith("[0, 255] then imagenet mean/std x 255 -> ")
    assert seg["extractor"]["input"]["range"] == rec["extractor"]["input"]["range"]
    bad = make_record(task="knn", model="m", weights={}, protocol={}, dataset={}, metrics={},
                      extractor={"normalization": {"name": "x", "mean": [0.5], "std": [0.0]}})
    assert "input" not in bad["extractor"]
