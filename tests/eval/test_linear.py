"""satdino-linear-v1 (satbench/eval/linear.py): protocol pins, resume exactness, checkpoint layout, evaluate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from satbench.models.backbones.satdino import SatDINOViT
from satbench.errors import ProtocolError, SatbenchError
from satbench.runtime.distributed import DistInfo, EpochShuffleSampler, ShardSampler
from satbench.eval.linear import (LabeledImages, LinearClassifier, LinearSettings, evaluate_with_head,
                                  train_classifier, topk_correct)
from satbench.models.features import FeatureExtractor
from satbench.config.protocols import load_protocol
from satbench.models.registry import ModelCard
from satbench.models.weights import LoadedModel, WeightsInfo, load_model

TINY = dict(crop=32, resize=36)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_extractor(seed: int = 0, depth: int = 2, dim: int = 64) -> FeatureExtractor:
    """A seeded random depth-2 SatDINO ViT behind the FeatureExtractor."""
    torch.manual_seed(seed)
    model = SatDINOViT(patch_size=16, embed_dim=dim, depth=depth, num_heads=2)
    card = ModelCard(name="satdino-tiny-test", family="satdino", patch_size=16, embed_dim=dim, depth=depth,
                     feature_dim=dim, normalization="fmow", arch="vit_tiny")
    return FeatureExtractor(LoadedModel(model, card, WeightsInfo("random", kind="random", seed=seed)), device="cpu")


def tiny_protocol(name: str = "satdino-linear-v1", **kw):
    base = dict(train_crop=TINY["crop"], val_resize=TINY["resize"], val_crop=TINY["crop"], batch_size=8)
    base.update(kw)
    return load_protocol(name).with_overrides(**base)


def subset(samples, per_class: int, classes: int):
    out, seen = [], {}
    for s in samples:
        if s.label < classes and seen.get(s.label, 0) < per_class:
            out.append(s)
            seen[s.label] = seen.get(s.label, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------------------------------
def test_protocol_pins_spec_4_1():
    p = load_protocol("satdino-linear-v1")
    s = LinearSettings.from_protocol(p)
    assert (s.mode, s.epochs, s.lr, s.batch_size, s.optimizer, s.weight_decay) == ("head", 25, 1e-5, 128, "adamw", 0.0)
    assert (s.train_crop, s.val_resize, s.val_crop, s.head_init_std, s.lr_scaling_denominator) == (224, 256, 224, 0.01, 256)
    assert s.scaled_lr(1) == pytest.approx(1e-5 * 128 / 256)
    assert s.scaled_lr(8) == pytest.approx(1e-5 * 128 * 8 / 256)
    assert p.params["scheduler"] == "cosine-per-epoch" and p.params["feature"] == "cls"
    ft = LinearSettings.from_protocol(load_protocol("satdino-finetune-v1"))
    assert ft.mode == "full" and ft.weight_decay == 0.0
    with pytest.raises(ProtocolError, match="mode"):
        LinearSettings.from_protocol(p.with_overrides(mode="partial"))
    with pytest.raises(ProtocolError, match="batch_size"):
        LinearSettings.from_protocol(p.with_overrides(batch_size=0))
    with pytest.raises(ProtocolError, match="scheduler"):  # descriptive params are checked, not ignored
        LinearSettings.from_protocol(p.with_overrides(scheduler="step"))


def test_linear_classifier_official_layout():
    torch.manual_seed(0)
    head = LinearClassifier(384, 63)
    assert sorted(head.state_dict()) == ["linear.bias", "linear.weight"]
    assert head.linear.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.count_nonzero(head.linear.bias) == 0
    assert isinstance(head.linear, nn.Linear) and head(torch.zeros(2, 384)).shape == (2, 63)


def test_topk_correct_against_numpy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g)
    y = torch.randint(0, 7, (50,), generator=g)
    order = np.argsort(-logits.numpy(), axis=1)
    ref1 = int((order[:, 0] == y.numpy()).sum())
    ref5 = int(sum(y.numpy()[i] in order[i, :5] for i in range(50)))
    assert topk_correct(logits, y, (1, 5)) == [ref1, ref5]


def test_samplers_one_process_equals_two(ucm_mini):
    n, batch = 20, 8
    one = EpochShuffleSampler(n, DistInfo(0, 1), seed=3)
    two = [EpochShuffleSampler(n, DistInfo(r, 2), seed=3) for r in range(2)]
    for epoch in (0, 1):
        for s in [one, *two]:
            s.set_epoch(epoch)
        a = one.indices()
        r0, r1 = two[0].indices(), two[1].indices()
        for i in range(0, n, batch):
            assert sorted(a[i:i + batch]) == sorted(r0[i // 2:(i + batch) // 2] + r1[i // 2:(i + batch) // 2])
    assert one.indices() != EpochShuffleSampler(n, DistInfo(0, 1), seed=3).indices()  # epoch 1 differs from epoch 0
    shards = [list(ShardSampler(11, DistInfo(r, 3))) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))


def test_augmentation_depends_only_on_seed_epoch_index(ucm_mini):
    from satbench.data.transforms import train_transform

    items = ucm_mini.samples("train")[:3]
    ds = LabeledImages(items, train_transform(32), seed=5)
    a2 = ds[2][0]
    torch.rand(100)  # disturbing the global RNG changes nothing
    assert torch.equal(ds[0][0], LabeledImages(items, train_transform(32), seed=5)[0][0])
    assert torch.equal(ds[2][0], a2)
    ds.epoch = 1
    assert not torch.equal(ds[2][0], a2)


def test_probe_learns_and_backbone_stays_frozen(ucm_mini, tmp_path):
    ex = tiny_extractor()
    before = {k: v.clone() for k, v in ex.model.state_dict().items()}
    train = subset(ucm_mini.samples("train"), 8, 4)
    val = subset(ucm_mini.samples("val"), 4, 4)
    p = tiny_protocol(epochs=3, lr=0.5, batch_size=16)
    res = train_classifier(ex, train, val, 21, p, output_dir=tmp_path / "run", progress=False)
    s = LinearSettings.from_protocol(p)
    # lr scaling and the per-epoch cosine (T_max = epochs, eta_min 0)
    base = 0.5 * 16 / 256
    assert res.effective_lr == pytest.approx(base)
    assert [h["lr"] for h in res.history] == pytest.approx([base * (1 + math.cos(math.pi * e / s.epochs)) / 2
                                                            for e in range(3)])
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.best["acc1"] == max(h["acc1"] for h in res.history)
    assert res.last["acc1"] == res.history[-1]["acc1"]
    for k, v in ex.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    ck = torch.load(res.checkpoint, map_location="cpu", weights_only=False)
    for k, v in ck["teacher"].items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("mode", ["head", "full"])
def test_interrupted_run_resumes_to_identical_state(ucm_mini, tmp_path, mode):
    train = subset(ucm_mini.samples("train"), 4, 4)
    val = subset(ucm_mini.samples("val"), 2, 4)
    name = "satdino-linear-v1" if mode == "head" else "satdino-finetune-v1"
    p = tiny_protocol(name, epochs=3, lr=0.05)

    ref_ex = tiny_extractor()
    ref = train_classifier(ref_ex, train, val, 21, p, output_dir=tmp_path / "ref", seed=1, progress=False)

    def crash(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt("simulated interruption after epoch 1")

    with pytest.raises(KeyboardInterrupt):
        train_classifier(tiny_extractor(), train, val, 21, p, output_dir=tmp_path / "cut", seed=1, progress=False,
                         on_epoch_end=crash)
    with pytest.raises(SatbenchError, match="--resume"):
        train_classifier(tiny_extractor(), train, val, 21, p, output_dir=tmp_path / "cut", seed=1, progress=False)
    with pytest.raises(ProtocolError, match="protocol hash"):
        train_classifier(tiny_extractor(), train, val, 21, p.with_overrides(lr=0.01), output_dir=tmp_path / "cut",
                         seed=1, progress=False, resume=True)
    ex = tiny_extractor(seed=7)  # a different init: the checkpoint must overwrite it
    res = train_classifier(ex, train, val, 21, p, output_dir=tmp_path / "cut", seed=1, progress=False, resume=True)
    assert res.resumed_from_epoch == 1
    strip = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert strip(res.history) == strip(ref.history)  # losses, accuracies, lrs: exactly equal
    for k in ref.head:
        assert torch.equal(res.head[k], ref.head[k]), k
    for k, v in ref_ex.model.state_dict().items():
        assert torch.equal(ex.model.state_dict()[k], v), k
    a = torch.load(tmp_path / "ref" / "checkpoint.pth", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoint.pth", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3 and a["best"] == b["best"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["scheduler"] == b["scheduler"]


def test_checkpoint_loads_with_the_official_layout(ucm_mini, tmp_path):
    """teacher strictly into a fresh SatDINOViT, linear_head strictly into an nn.Linear named ``linear``."""
    ex = tiny_extractor()
    train = subset(ucm_mini.samples("train"), 2, 3)
    val = subset(ucm_mini.samples("val"), 2, 3)
    res = train_classifier(ex, train, val, 21, tiny_protocol("satdino-finetune-v1", epochs=1, lr=0.05),
                           output_dir=tmp_path, progress=False)
    for path in (res.checkpoint, res.best_checkpoint):
        ck = torch.load(path, map_location="cpu", weights_only=False)  # as the official eval_linear reads it
        fresh = SatDINOViT(patch_size=16, embed_dim=64, depth=2, num_heads=2)
        fresh.load_state_dict(ck["teacher"], strict=True)
        assert len(ck["teacher"]) == 4 + 12 * 2 + 2 + 1  # cls, register, pos, patch w/b; 12 per block; norm w/b
        assert not any(k.startswith(("module.", "backbone.")) for k in ck["teacher"])

        class OfficialLinearClassifier(nn.Module):
            def __init__(self, dim, num_labels):
                super().__init__()
                self.num_labels = num_labels
                self.linear = nn.Linear(dim, num_labels)

            def forward(self, x):
                return self.linear(x.view(x.size(0), -1))

        head = OfficialLinearClassifier(64, 21)
        head.load_state_dict(ck["linear_head"], strict=True)
        x = torch.rand(2, 3, 32, 32)
        ex.model.eval()
        with torch.no_grad():
            ref = ex.model(x)
            assert torch.equal(fresh(x), ref)
            expected = ref @ res.head["linear.weight"].T + res.head["linear.bias"]
            assert torch.allclose(head(fresh(x)), expected, atol=1e-6)


def test_saved_checkpoint_loads_through_load_model_and_evaluates(ucm_mini, tmp_path):
    card = ModelCard(name="satdino-vit_tiny-test", family="satdino", arch="vit_tiny", patch_size=16, embed_dim=192,
                     depth=12, num_heads=3, feature_dim=192, normalization="fmow")
    ex = FeatureExtractor(load_model(card, "random", seed=0), device="cpu")
    train = subset(ucm_mini.samples("train"), 2, 3)
    val = subset(ucm_mini.samples("val"), 3, 3)
    p = tiny_protocol(epochs=1, lr=0.5)
    res = train_classifier(ex, train, val, 21, p, output_dir=tmp_path, progress=False)
    loaded = load_model(card, res.checkpoint)  # weights_only=True + allow-list: the checkpoint is safe to read
    assert loaded.linear_head is not None
    for k in res.head:
        assert torch.equal(loaded.linear_head[k], res.head[k])
    m = evaluate_with_head(FeatureExtractor(loaded, device="cpu"), loaded.linear_head, val, 21, p, progress=False)
    assert m.acc1 == pytest.approx(res.history[-1]["acc1"]) and m.n == len(val)
    assert m.loss == pytest.approx(res.history[-1]["val_loss"], rel=1e-5)
    with pytest.raises(SatbenchError, match="classes"):
        evaluate_with_head(ex, loaded.linear_head, val, 10, p, progress=False)
    with pytest.raises(SatbenchError, match="no linear_head"):
        evaluate_with_head(ex, None, val, 21, p, progress=False)
