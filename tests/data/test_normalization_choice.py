"""One decision of a run's normalisation for kNN, the linear probes and extract (satbench.data.normalization_choice)."""

from __future__ import annotations

import pytest

from satbench.config.protocols import load_protocol
from satbench.data.normalization import get_normalization
from satbench.data.normalization_choice import choose_normalization
from satbench.data.scene import open_scene_dataset
from satbench.errors import DataError, ProtocolError
from satbench.eval.knn_protocols import protocol_normalization
from satbench.eval.task_linear import protocol_normalization as linear_normalization


def test_each_choice_names_one_normalisation():
    imagenet, ucm = get_normalization("imagenet"), open_scene_dataset("ucm-mini").normalization
    assert choose_normalization(None, where="w") is None
    assert choose_normalization("model", where="w", model_norm=imagenet) is imagenet
    assert choose_normalization("dataset", where="w", dataset_norm=ucm) is ucm
    assert choose_normalization("imagenet", where="w").mean == imagenet.mean
    assert choose_normalization("uc_merced", where="w").mean == ucm.mean  # a catalog dataset's table
    given = choose_normalization("mean=0.1,0.2,0.3;std=0.4,0.5,0.6", where="w")
    assert list(given.mean) == [0.1, 0.2, 0.3] and list(given.std) == [0.4, 0.5, 0.6]
    assert choose_normalization("dataset", where="w", override=imagenet) is imagenet
    t = choose_normalization("table", where="protocol p", dataset_name="eurosat", table={"eurosat": ((.1, .2, .3),
                                                                                                      (.4, .5, .6))})
    assert t.name == "p:eurosat" and list(t.std) == [.4, .5, .6]


def test_missing_statistics_are_one_line_naming_what_is_missing():
    with pytest.raises(DataError, match=r"^protocol x: normalization 'dataset' needs .*mydata has none"):
        choose_normalization("dataset", where="protocol x", dataset_name="mydata")
    with pytest.raises(ProtocolError, match=r"protocol y has no normalization statistics for 'aid' \(it knows eurosat\)"):
        choose_normalization("table", where="protocol y", dataset_name="aid", table={"eurosat": ((0,) * 3, (1,) * 3)})


def test_tasks_ask_the_one_decision():
    ds = open_scene_dataset("ucm-mini")
    knn = protocol_normalization(load_protocol("satdino-knn-v1"), ds)
    assert knn is ds.normalization and knn.name
    assert linear_normalization("model", ds) is None and linear_normalization("dataset", ds) is ds.normalization
    ds.normalization = None
    with pytest.raises(DataError, match="ucm-mini has none"):
        linear_normalization("dataset", ds)
