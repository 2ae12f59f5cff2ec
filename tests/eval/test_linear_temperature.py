"""``--temperature-scaling`` on the trained probes (linear, fine-tune): T is fitted on a stratified, seeded part of the
train split that the head never trains on (``temperature_holdout``, a hashed protocol override), with the best
epoch's head, and applied to its val logits; never on the val split. Checked against an independent fit (scipy) on
the logits the checkpoint keeps, and through a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from satbench.cli.app import main
from satbench.config.protocols import load_protocol


pytestmark = pytest.mark.usefixtures("one_thread")


def _protocol(tmp_path, name="satdino-linear-v1", **params):
    from support.builders import protocol_copy

    return protocol_copy(tmp_path, name, **{**dict(train_crop=32, val_resize=36, val_crop=32, batch_size=32, epochs=2,
                                                   lr=0.5), **params})


def _cmd(tmp_path, proto, task="linear", res="res"):
    return ["run", "--task", task, "--protocol", str(proto), "--model", "satdino-vit_small-16", "--weights", "random",
            "--dataset", "ucm-mini", "--no-progress", "--num-workers", "0", "--device", "cpu",
            "--results-dir", str(tmp_path / res)]


def _nll_minimiser(z: np.ndarray, y: np.ndarray) -> float:
    """An independent temperature fit: scipy's bounded scalar minimiser of the NLL over log T."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.01), np.log(100.0)), method="bounded",
                                        options={"xatol": 1e-10}).x))


def test_linear_temperature_scaling_fits_on_held_out_train(tmp_path, ucm_mini):
    from satbench.eval.cached_linear import stratified_holdout
    from satbench.records.predictions import predictions_for_record
    from satbench.stats.calibration import calibration_errors

    proto = _protocol(tmp_path)
    out = tmp_path / "out"
    assert main(_cmd(tmp_path, proto) + ["--temperature-scaling", "--output-dir", str(out)]) == 0
    path = next((tmp_path / "res").glob("*.json"))
    rec = json.loads(path.read_text())
    # the hold-out is a recorded, hashed override: the head trained on 90% of train
    assert rec["protocol"]["overrides"] == {"temperature_holdout": 0.1}
    assert rec["protocol"]["content"]["params"]["temperature_holdout"] == 0.1
    n_train = len(ucm_mini.samples("train"))
    hold = rec["metrics"]["holdout"]
    assert hold["n_fit"] + hold["n_holdout"] == n_train and hold["n_holdout"] == round(0.1 * n_train + 0.5)
    ts = rec["metrics"]["calibration"]["temperature_scaling"]
    assert ts["applied"] is True and ts["fitted_on"]["split"] == "train"
    assert ts["fitted_on"]["split_sha256"] == ucm_mini.split_sha256("train") != ucm_mini.split_sha256("val")
    # an independent fit on the logits the checkpoint keeps gives the same temperature
    ck = torch.load(out / "checkpoint.pth", weights_only=False)
    z_hold = ck["best_holdout_logits"].numpy()
    labels = np.asarray([s.label for s in ucm_mini.samples("train")])
    _, idx = stratified_holdout(labels, 0.1, 0)
    assert z_hold.shape == (hold["n_holdout"], ucm_mini.num_classes)
    t_ref = _nll_minimiser(z_hold, labels[idx])
    assert ts["temperature"] == pytest.approx(t_ref, rel=1e-5)
    assert ts["temperature"] != pytest.approx(1.0, abs=1e-3)  # the random-init head is not calibrated
    # the scaled confidences are softmax(val logits / T) of the reported predictions; the errors follow from them
    z_val = ck["best_predictions"]["logits"].numpy()
    preds = predictions_for_record(path)
    scaled = np.exp(z_val / ts["temperature"]) / np.exp(z_val / ts["temperature"]).sum(1, keepdims=True)
    got = preds.conf["top1.ts"]
    assert np.allclose(got, scaled[np.arange(len(z_val)), preds.preds["top1"]], atol=1e-9)
    scaled_err = calibration_errors(got, preds.correct("top1"))
    assert ts["scaled"]["ece"] == pytest.approx(scaled_err["ece"], abs=1e-9)
    assert np.array_equal(z_val.argmax(1), preds.preds["top1"])  # a temperature never changes the prediction


def test_held_out_logits_survive_a_resume(ucm_mini, tmp_path):
    """Interrupted after epoch 1 and resumed: the held-out part, the best epoch's logits on it and on val are those
    of an uninterrupted run (they travel in checkpoint.pth), so the same temperature is fitted."""
    from support.builders import tiny_satdino
    from satbench.eval.linear import train_classifier
    from satbench.models.features import FeatureExtractor

    def tiny_extractor(seed: int = 0) -> FeatureExtractor:
        return FeatureExtractor(tiny_satdino(seed=seed), device="cpu")

    def first(samples, per_class: int, classes: int = 4) -> list:
        return [s for s in samples if s.label < classes and
                sum(t.label == s.label for t in samples[:samples.index(s)]) < per_class]

    train, val = first(ucm_mini.samples("train"), 6), first(ucm_mini.samples("val"), 2)
    p = load_protocol("satdino-linear-v1").with_overrides(train_crop=32, val_resize=36, val_crop=32, batch_size=8,
                                                          epochs=3, lr=0.05, temperature_holdout=0.25)
    ref = train_classifier(tiny_extractor(), train, val, 21, p, output_dir=tmp_path / "ref", seed=1, progress=False)

    def crash(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt("simulated interruption after epoch 2")

    with pytest.raises(KeyboardInterrupt):
        train_classifier(tiny_extractor(), train, val, 21, p, output_dir=tmp_path / "cut", seed=1, progress=False,
                         on_epoch_end=crash)
    res = train_classifier(tiny_extractor(seed=7), train, val, 21, p, output_dir=tmp_path / "cut", seed=1,
                           progress=False, resume=True)
    assert res.resumed_from_epoch == 2
    assert ref.held_out.n_fit == res.held_out.n_fit == 18 and len(ref.held_out.indices) == 6
    assert np.array_equal(ref.held_out.indices, res.held_out.indices)
    assert ref.held_out.logits is not None and np.array_equal(ref.held_out.logits, res.held_out.logits)
    assert np.array_equal(ref.best_predictions.logits, res.best_predictions.logits)
    # the held-out images are not trained on: none of them is in what the sampler draws from
    held = {train[i].path for i in ref.held_out.indices}
    assert all("holdout_acc1" in h for h in ref.history if h["epoch"] == ref.best["epoch"])
    assert len(held) == 6 and all(h.get("acc1") is not None for h in ref.history)


def test_override_changes_the_hash_and_plain_runs_say_not_asked(tmp_path, ucm_mini):
    proto = _protocol(tmp_path, epochs=1)
    assert main(_cmd(tmp_path, proto, res="a") + ["--temperature-scaling", "--output-dir", str(tmp_path / "a1")]) == 0
    assert main(_cmd(tmp_path, proto, res="b") + ["--output-dir", str(tmp_path / "b1")]) == 0
    a = json.loads(next((tmp_path / "a").glob("*.json")).read_text())
    b = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert a["protocol"]["hash"] != b["protocol"]["hash"] == load_protocol(str(proto)).hash
    assert b["protocol"]["overrides"] == {} and "holdout" not in b["metrics"]
    assert b["metrics"]["calibration"]["temperature_scaling"]["applied"] is False
    assert len(ucm_mini.samples("train")) == a["metrics"]["holdout"]["n_fit"] + a["metrics"]["holdout"]["n_holdout"]


@pytest.mark.parametrize("extra, needle", [
    (["--temperature-holdout", "0.2"], "add --temperature-scaling"),
    (["--temperature-scaling", "--evaluate"], "--evaluate"),
    (["--temperature-scaling", "--temperature-holdout", "0.7"], "temperature_holdout"),
])
def test_temperature_options_refused_in_one_line(tmp_path, capsys, extra, needle):
    proto = _protocol(tmp_path)
    assert main(_cmd(tmp_path, proto) + extra) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*.json"))


def test_temperature_holdout_too_small_for_the_classes(tmp_path, capsys):
    """A hold-out with fewer images than classes cannot be stratified: one line naming the option, not sklearn's
    ValueError."""
    proto = _protocol(tmp_path)
    assert main(_cmd(tmp_path, proto) + ["--temperature-scaling", "--temperature-holdout", "0.01"]) == 2
    err = capsys.readouterr().err.strip()
    assert "temperature_holdout 0.01 of the train split" in err and len(err.splitlines()) == 1


def test_python_api_needs_the_hold_out(tmp_path):
    import satbench
    from satbench.errors import SatbenchError

    with pytest.raises(SatbenchError, match="temperature_holdout=0.1"):
        satbench.run("linear", model="satdino-vit_small-16", weights="random", dataset="ucm-mini",
                     protocol=str(_protocol(tmp_path)), temperature_scaling=True, device="cpu", progress=False,
                     results_dir=str(tmp_path / "res"), output_dir=str(tmp_path / "o"))


def test_finetune_temperature_scaling(tmp_path, ucm_mini):
    """Full fine-tuning takes the same hold-out: the backbone trains on the rest too, T is fitted on the held-out
    logits of the best epoch's network."""
    proto = _protocol(tmp_path, name="satdino-finetune-v1", epochs=1, lr=0.01)
    assert main(_cmd(tmp_path, proto, task="finetune") + ["--temperature-scaling", "--temperature-holdout", "0.2",
                                                           "--output-dir", str(tmp_path / "ft")]) == 0
    rec = json.loads(next((tmp_path / "res").glob("*.json")).read_text())
    ts = rec["metrics"]["calibration"]["temperature_scaling"]
    assert rec["protocol"]["overrides"] == {"temperature_holdout": 0.2}
    assert ts["applied"] is True and ts["fitted_on"]["fraction"] == 0.2
    assert ts["fitted_on"]["n"] == rec["metrics"]["holdout"]["n_holdout"] == 68
    assert rec["summary"]["calibration"]["ece"] != rec["metrics"]["calibration"]["temperature_scaling"]["scaled"]["ece"]
