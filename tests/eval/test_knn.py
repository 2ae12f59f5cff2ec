"""Multi-scale kNN engine: spec 3.3 sizes, DINO's weighted vote, FAISS/torch parity, cache, record provenance."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from satbench.eval.cache import FeatureCache
from satbench.data.catalog import get_dataset_spec
from satbench.data.scene import open_scene_dataset
from satbench.data.transforms import knn_input_size, knn_resize_size
from satbench.errors import ProtocolError
from satbench.eval.knn_vote import knn_classify, knn_vote
from satbench.eval.knn_search import knn_search, l2_normalize
from satbench.eval.task_knn import run_knn
from satbench.models.backbones import get_family
from satbench.eval.knn_protocols import build_scale_entries
from satbench.config.protocols import load_protocol
from satbench.models.registry import get_card
from satbench.models.weights import LoadedModel
from support.builders import tiny_satdino

# Spec 3.3 table: dataset -> [(target, final, resize)] for scales 1.0, 0.5, 0.25, 0.125.
SPEC_TABLE = {
    "eurosat": [(64, 64, 73), (32, 32, 37), (16, 16, 18), (8, 16, 18)],
    "resisc45": [(256, 256, 293), (128, 128, 146), (64, 64, 73), (32, 32, 37)],
    "uc_merced": [(256, 256, 293), (128, 128, 146), (64, 64, 73), (32, 32, 37)],
    "whu-rs19": [(600, 592, 677), (300, 288, 329), (150, 144, 165), (75, 64, 73)],
    "rs_c11": [(512, 512, 585), (256, 256, 293), (128, 128, 146), (64, 64, 73)],
    "siri-whu": [(200, 192, 219), (100, 96, 110), (50, 48, 55), (25, 16, 18)],
}


def tiny_loaded(name: str = "test-satdino-tiny-d2", seed: int = 0) -> LoadedModel:
    """A depth-2 ViT-Tiny/16 SatDINO backbone (random, seeded) with a card of its own: fast on 2 cores."""
    return tiny_satdino(name, seed)


class _FakeInfoDataset:
    """Only what build_scale_entries reads."""

    def __init__(self, name: str) -> None:
        self.protocol_name = name
        self.name = name
        self.native_size = get_dataset_spec(name).native_size


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_input_size_table_of_spec_3_3(name):
    proto = load_protocol("satdino-knn-v1")
    entries = build_scale_entries(proto, _FakeInfoDataset(name), "satdino")
    got = [(e.target, e.size, e.resize) for e in entries]
    assert got == SPEC_TABLE[name]
    native = get_dataset_spec(name).native_size
    assert [e.key for e in entries] == [f"{native}->{t}({f})" for t, f, _ in SPEC_TABLE[name]]
    for t, f, r in SPEC_TABLE[name]:  # independent of the protocol machinery
        assert knn_resize_size(f) == r == round(f * 256 / 224)
    assert [e.scale for e in entries] == [1.0, 0.5, 0.25, 0.125]


def test_eurosat_repeated_16px_is_one_view_but_two_entries():
    entries = build_scale_entries(load_protocol("satdino-knn-v1"), _FakeInfoDataset("eurosat"), "satdino")
    assert entries[2].view is entries[3].view
    assert len({e.view.key for e in entries}) == 3
    assert entries[2].key != entries[3].key  # "64->16(16)" and "64->8(16)" both reported


def test_size_multiple_is_16_even_for_patch_8():
    assert knn_input_size(200, 0.125, 16) == (25, 16)
    card = get_card("satdino-vit_small-8")
    assert card.patch_size == 8
    entries = build_scale_entries(load_protocol("satdino-knn-v1"), _FakeInfoDataset("siri-whu"), card.family)
    assert [e.size for e in entries] == [192, 96, 48, 16]


def test_input_res_policy():
    fam = get_family("scalemae")
    assert fam.input_res("224/size", 112) == 2.0 and fam.input_res("1.0", 56) == 1.0 and fam.input_res("none", 5) is None
    with pytest.raises(ProtocolError, match="takes no input resolution|take no input"):
        build_scale_entries(load_protocol("scalemae-knn-v1"), _FakeInfoDataset("eurosat"), "satdino")


def test_weighted_vote_hand_computed():
    # 2 queries, 4 train images, 3 classes, k = 3, T = 0.5.
    train_labels = torch.tensor([0, 1, 1, 2])
    sims = torch.tensor([[0.9, 0.5, 0.4], [0.8, 0.7, 0.1]])
    idx = torch.tensor([[0, 1, 2], [3, 0, 1]])
    ranking = knn_vote(sims, idx, train_labels, num_classes=3, k=3, temperature=0.5)
    # query 0: class0 = e^1.8 = 6.05; class1 = e^1.0 + e^0.8 = 2.718 + 2.226 = 4.94 -> class 0 wins (despite 2 votes for 1)
    # query 1: class2 = e^1.6 = 4.95; class0 = e^1.4 = 4.06; class1 = e^0.2 = 1.22
    assert ranking[0, :2].tolist() == [0, 1]
    assert ranking[1].tolist() == [2, 0, 1]
    # with k = 1 only the nearest votes
    assert knn_vote(sims, idx, train_labels, 3, 1, 0.5)[:, 0].tolist() == [0, 2]
    # a high temperature flattens the weights: two votes for class 1 beat one for class 0
    assert knn_vote(sims, idx, train_labels, 3, 3, 100.0)[0, 0].item() == 1


def test_vote_confidence_is_the_top_class_share_of_the_weighted_vote():
    from satbench.eval.knn_vote import knn_vote_confidence

    train_labels = torch.tensor([0, 1, 1, 2])
    sims = torch.tensor([[0.9, 0.5, 0.4], [0.8, 0.7, 0.1], [0.9, 0.3, 0.2]])
    idx = torch.tensor([[0, 1, 2], [3, 0, 1], [1, 2, 1]])
    for form in ("official", "shifted"):
        ranking, used, conf = knn_vote_confidence(sims, idx, train_labels, 3, 3, 0.5, form=form)
        e = np.exp(sims.double().numpy() / 0.5)
        # query 0: class 0 = e^1.8 of e^1.8 + e^1.0 + e^0.8; query 1: class 2 = e^1.6 of all three; query 2: unanimous
        expected = [e[0, 0] / e[0].sum(), e[1, 0] / e[1].sum(), 1.0]
        assert used == form and conf.dtype == np.float64
        assert conf.tolist() == pytest.approx(expected, rel=1e-6, abs=0) and conf[2] == 1.0
        assert ranking[:, 0].tolist() == [0, 2, 1]


def dino_knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes, num_chunks=100):
    """DINO's eval_knn.knn_classifier, re-typed independently (pure torch, chunked over the test set)."""
    top1, top5, total = 0.0, 0.0, 0
    train_features = train_features.t()
    num_test_images = test_labels.shape[0]
    imgs_per_chunk = max(1, num_test_images // num_chunks)
    retrieval_one_hot = torch.zeros(k, num_classes)
    for idx in range(0, num_test_images, imgs_per_chunk):
        features = test_features[idx: min(idx + imgs_per_chunk, num_test_images), :]
        targets = test_labels[idx: min(idx + imgs_per_chunk, num_test_images)]
        batch_size = targets.shape[0]
        similarity = torch.mm(features, train_features)
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        retrieval_one_hot.resize_(batch_size * k, num_classes).zero_()
        retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(T).exp_()
        probs = torch.sum(torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes),
                                    distances_transform.view(batch_size, -1, 1)), 1)
        _, predictions = probs.sort(1, True)
        correct = predictions.eq(targets.data.view(-1, 1))
        top1 = top1 + correct.narrow(1, 0, 1).sum().item()
        top5 = top5 + correct.narrow(1, 0, min(5, k)).sum().item()
        total += targets.size(0)
    return top1 * 100.0 / total, top5 * 100.0 / total


@pytest.fixture(scope="module")
def ucm_features():
    """Real features: a tiny random SatDINO on the bundled UC Merced subset at 32 px (84 val, 336 train)."""
    from satbench.eval.extract import extract_views
    from satbench.eval.knn_protocols import build_scale_entries
    from satbench.models.features import FeatureExtractor

    ds = open_scene_dataset("ucm-mini")
    proto = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125])
    view = build_scale_entries(proto, ds, "satdino")[0].view
    ex = FeatureExtractor(tiny_loaded(), normalization=ds.normalization, device="cpu")
    out = {}
    for split in ("train", "val"):
        s = ds.samples(split)
        out[split] = (extract_views(ex, s, [view], split_sha256="x", progress=False, num_workers=0)[view.key],
                      [x.label for x in s])
    return out, len(ds.classes)


def test_faiss_and_torch_find_the_same_neighbours(ucm_features):
    (xtr, _), (xte, _) = ucm_features[0]["train"], ucm_features[0]["val"]
    x, q = l2_normalize(xtr), l2_normalize(xte)
    s_f, i_f = knn_search(x, q, 20, backend="faiss")
    s_t, i_t = knn_search(x, q, 20, backend="torch", chunk=17)
    assert torch.equal(i_f, i_t)
    assert torch.allclose(s_f, s_t, atol=1e-5)
    # the tie rule on real features: decreasing similarity, equal similarities by increasing train index
    for s, i in ((s_f, i_f), (s_t, i_t)):
        assert bool(((s[:, 1:] < s[:, :-1]) | ((s[:, 1:] == s[:, :-1]) & (i[:, 1:] > i[:, :-1]))).all())
    # any block budget gives the same result
    b_f = knn_search(x, q, 20, backend="faiss", max_block_bytes=1)
    b_t = knn_search(x, q, 20, backend="torch", chunk=17, max_block_bytes=1)
    assert torch.equal(b_f[0], s_f) and torch.equal(b_f[1], i_f) and torch.equal(b_t[0], s_t) and torch.equal(b_t[1], i_t)


def test_knn_matches_dino_knn_classifier(ucm_features):
    feats, num_classes = ucm_features
    (xtr, ytr), (xte, yte) = feats["train"], feats["val"]
    ks = [1, 5, 10, 20, 100]
    for backend in ("faiss", "torch"):
        res = knn_classify(xtr, ytr, xte, yte, ks, 0.07, num_classes, backend=backend)
        for k in ks:
            ref = dino_knn_classifier(l2_normalize(xtr), torch.tensor(ytr), l2_normalize(xte), torch.tensor(yte),
                                      k, 0.07, num_classes)
            assert (res.top1[k], res.top5[k]) == pytest.approx(ref, abs=1e-9), (backend, k)
    # real images and real features: far above chance (1/21) even for a random tiny ViT, below perfect
    assert 100 / 21 < res.top1[20] < 100


def test_run_knn_record_cache_and_provenance(tmp_path):
    ds = open_scene_dataset("ucm-mini")
    proto = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125, 0.25], k=[10, 20])
    cache = FeatureCache(tmp_path / "cache")
    loaded = tiny_loaded()
    rec = run_knn(loaded, ds, proto, device="cpu", cache=cache, progress=False, batch_size=128, num_workers=0)
    ex = rec["extra"]["extraction"]
    assert ex["images_decoded"] == 420 and ex["forward_images"] == 840 and not ex["cached_views"]
    # every hash a reproduction needs
    assert rec["protocol"]["hash"] == proto.hash and rec["protocol"]["overrides"] == {"scales": [0.125, 0.25], "k": [10, 20]}
    assert rec["protocol"]["base_hash"] == load_protocol("satdino-knn-v1").hash != proto.hash
    assert set(rec["dataset"]["split_hashes"]) == {"train", "val"}
    assert rec["dataset"]["split_hashes"]["val"] == ds.splits["val"].sha256
    assert rec["weights"]["seed"] == 0 and rec["weights"]["source"] == "random"
    assert rec["dataset"]["normalization_used"]["name"] == "uc_merced"
    m = rec["metrics"]
    assert [e["key"] for e in m["per_scale"]] == ["256->32(32)", "256->64(64)"]
    s = rec["summary"]
    assert s["top1_avg"] == pytest.approx(np.mean([s["top1_per_scale"]["0.125"], s["top1_per_scale"]["0.25"]]))
    assert m["official_format"]["uc_merced"]["average"][1] == pytest.approx(s["top1_avg"])
    # the official vote arithmetic at T = 0.07, and the search plan, are in the record
    assert rec["extra"]["vote"] == "official" and "vote_forms" not in rec["extra"]
    assert rec["extra"]["search"]["backend"] == "faiss" and rec["extra"]["search"]["blocks"] >= 1
    # second run: served from the cache, no decode, no forward pass, identical numbers
    loaded.model.forward_features = None  # any forward pass would now fail
    rec2 = run_knn(loaded, ds, proto, device="cpu", cache=cache, progress=False, num_workers=0)
    ex2 = rec2["extra"]["extraction"]
    assert ex2["forward_images"] == 0 and ex2["images_decoded"] == 0 and len(ex2["cached_views"]) == 4
    assert rec2["extra"]["cache"]["hits"] == 4
    assert rec2["summary"] == rec["summary"]


def test_k_larger_than_train_split_is_a_clear_error():
    ds = open_scene_dataset("ucm-mini")
    proto = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125], k=[400], k_report=400)
    with pytest.raises(ProtocolError, match="k = 400 needs at least 400 training images"):
        run_knn(tiny_loaded(), ds, proto, device="cpu", cache=None, progress=False)
