"""satdino-finetune-v1 through the CLI: trains the backbone, checkpoints, resumes, evaluates its own checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from satbench.cli.app import main
from satbench.errors import ProtocolError
from satbench.config.protocols import load_protocol


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def small_ucm(tmp_path, ucm_mini):
    """A 3-class, 12-image copy of ucm-mini laid out as a full ``uc_merced`` folder (known name, own splits)."""
    root = tmp_path / "data" / "uc_merced"
    lines = {"train": [], "val": []}
    for split, per in (("train", 3), ("val", 1)):
        seen: dict[int, int] = {}
        for s in ucm_mini.samples(split):
            if s.label < 3 and seen.get(s.label, 0) < per:
                seen[s.label] = seen.get(s.label, 0) + 1
                dst = root / "images" / s.path.parent.name / s.path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(s.path, dst)
                lines[split].append(f"./{s.path.parent.name}/{s.path.name}")
    for split, ls in lines.items():
        (root / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def _tiny_protocol(tmp_path, name="satdino-finetune-v1", **params):
    from support.builders import protocol_copy

    return protocol_copy(tmp_path, name, **{**dict(train_crop=32, val_resize=36, val_crop=32, batch_size=4, epochs=2,
                                                   lr=0.01), **params})


def test_finetune_cli_trains_backbone_resumes_and_evaluates(tmp_path, small_ucm, capsys):
    proto = _tiny_protocol(tmp_path)
    out, res = tmp_path / "ft", tmp_path / "res"
    common = ["run", "--task", "finetune", "--protocol", str(proto), "--model", "satdino-vit_small-16",
              "--dataset", str(small_ucm), "--no-progress", "--num-workers", "0", "--results-dir", str(res),
              "--device", "cpu"]
    assert main(common + ["--weights", "random", "--output-dir", str(out)]) == 0
    rec = json.loads(next(res.glob("*.json")).read_text())
    assert rec["task"] == "finetune" and set(rec["summary"]) == {"top1", "top5", "ci", "calibration"}
    assert len(rec["metrics"]["per_epoch"]) == 2 and rec["dataset"]["name"] == "uc_merced"
    assert rec["protocol"]["content"]["params"]["mode"] == "full"
    ck = torch.load(out / "checkpoint.pth", weights_only=False)
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    init = load_model(get_card("satdino-vit_small-16"), "random", seed=0).model.state_dict()
    assert len(ck["teacher"]) == 151 and sorted(ck["linear_head"]) == ["linear.bias", "linear.weight"]
    assert not torch.equal(ck["teacher"]["blocks.0.attn.qkv.weight"], init["blocks.0.attn.qkv.weight"])  # trained
    assert ck["epoch"] == 2 and ck["scheduler"]["last_epoch"] == 2

    # running again into the same folder without --resume is refused; with --resume it continues (nothing left)
    capsys.readouterr()
    assert main(common + ["--weights", "random", "--output-dir", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(common + ["--weights", "random", "--output-dir", str(out), "--resume", "--epochs", "3"]) == 2
    assert "protocol hash" in capsys.readouterr().err  # --epochs 3 is another protocol: refused

    # --evaluate the best checkpoint with its head: the best epoch's top-1 again
    assert main(common + ["--weights", str(out / "checkpoint_best.pth"), "--evaluate"]) == 0
    recs = sorted(res.glob("*.json"), key=lambda p: json.loads(p.read_text())["provenance"]["date"])
    ev = [json.loads(p.read_text()) for p in recs if json.loads(p.read_text())["metrics"].get("evaluate")]
    assert len(ev) == 1 and ev[0]["summary"]["top1"] == pytest.approx(rec["summary"]["top1"])
    # the same head on the same images: the same confidences, so the same calibration errors
    assert {k: ev[0]["summary"]["calibration"][k] for k in ("ece", "rms", "mce")} == pytest.approx(
        {k: rec["summary"]["calibration"][k] for k in ("ece", "rms", "mce")}, abs=1e-6)


def test_finetune_task_rejects_a_head_protocol(ucm_mini):
    import satbench
    from satbench.errors import SatbenchError
    from satbench.eval.task import RunOptions, get_task

    with pytest.raises(ProtocolError, match="does not apply to task finetune"):
        satbench.run("finetune", dataset="ucm-mini", protocol="satdino-linear-v1", weights="random", write=False)
    with pytest.raises(SatbenchError, match="mode 'head'.*runs mode 'full'"):
        get_task("finetune").run(None, ucm_mini, load_protocol("satdino-linear-v1"), RunOptions())
