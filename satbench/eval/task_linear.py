"""Tasks ``linear`` and ``finetune``: SatDINO's linear probe (``satdino-linear-v1``) and full fine-tuning
(``satdino-finetune-v1``), resumable and data-parallel under torchrun (spec 4.1, 4.2).

The training loop is :func:`satbench.eval.linear.train_classifier`; this module declares the tasks, chooses the
normalisation the protocol prescribes, builds the extractor, and turns the training result into a record.
``--task linear --protocol cached-linear-v1`` (the fast cached protocol) is handed to the ``cached-linear`` task.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from satbench.config.argtypes import positive_float, positive_int
from satbench.errors import SatbenchError
from satbench.eval.linear_settings import LinearSettings
from satbench.stats.attach import add_calibration_arguments, add_seed_arguments, add_statistics_arguments, ci_text
from satbench.stats.attach import run_options as statistics_run_options
from satbench.eval.task import Headline, RunOptions, Task, get_task, register_task


def protocol_normalization(name: str, dataset: Any) -> Any:
    """The normalisation a linear / cached-linear protocol names: ``model`` (None: the card's), ``dataset`` (the
    dataset's table), or a preset / catalog dataset name (:mod:`satbench.data.normalization_choice`)."""
    from satbench.data.normalization_choice import choose_normalization

    return choose_normalization(name, where="protocol normalization", dataset_norm=getattr(dataset, "normalization", None),
                                dataset_name=getattr(dataset, "name", ""))


def default_output_dir(task: str, model: str, dataset: Any, protocol: str) -> Path:
    """``$SATBENCH_HOME/runs/<task>/<model>_<dataset>_<protocol>_<UTC time>_<random>``: checkpoints by default."""
    from satbench.runtime.resources import satbench_home

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return satbench_home() / "runs" / task / f"{model}_{dataset}_{protocol}_{stamp}_{uuid.uuid4().hex[:6]}"


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


class _TrainedProbeTask(Task):
    """Shared body of ``linear`` and ``finetune`` (they differ in protocol: ``mode: head`` or ``full``)."""

    settings = LinearSettings
    dataset_kinds = ("scene", "fmow")
    default_num_workers = 2
    distributed = True
    supports_seeds = True
    #: fitted on ``temperature_holdout`` of train, held out of training (``--temperature-holdout``, an override)
    supports_temperature_scaling = True
    mode = "head"

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--epochs", type=positive_int, default=None, help="epochs (protocol override)")
        g.add_argument("--lr", type=positive_float, default=None,
                       help="base learning rate, scaled by batch x world / 256 (protocol override)")
        g.add_argument("--train-batch-size", type=positive_int, default=None,
                       help="training batch per process (protocol override)")
        g.add_argument("--output-dir", default=None,
                       help="folder for checkpoint.pth (every epoch) and checkpoint_best.pth "
                            "(default: a new folder under $SATBENCH_HOME/runs)")
        g.add_argument("--resume", action="store_true", help="continue the run whose checkpoint.pth is in --output-dir")
        g.add_argument("--evaluate", action="store_true",
                       help="evaluate --weights with their linear_head on val (no training)")
        g.add_argument("--train-csv", default=None, help="fMoW: the train CSV (with --dataset fmow)")
        g.add_argument("--val-csv", default=None, help="fMoW: the val CSV (with --dataset fmow)")
        add_seed_arguments(g)
        add_statistics_arguments(g)
        add_calibration_arguments(g, "on a held-out part of the train split that the head is not trained on "
                                     "(--temperature-holdout), with the best epoch's head")
        g.add_argument("--temperature-holdout", type=positive_float, default=None, metavar="F",
                       help=f"with --temperature-scaling: the stratified, seeded fraction of train held out of "
                            f"training to fit T on (default {DEFAULT_TEMPERATURE_HOLDOUT}; a protocol override, "
                            f"hashed: the head trains on the rest, unlike the paper's protocol)")
        if self.supports_corruptions:
            from satbench.eval.corruption_eval import add_corruption_arguments

            add_corruption_arguments(g)

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        out = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.train_batch_size,
               "temperature_holdout": args.temperature_holdout}
        if getattr(args, "temperature_scaling", None) and args.temperature_holdout is None and not args.evaluate:
            out["temperature_holdout"] = DEFAULT_TEMPERATURE_HOLDOUT
        return {k: v for k, v in out.items() if v is not None}

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        from satbench.eval.corruption_eval import run_options as corruption_run_options

        return {"evaluate": args.evaluate, **statistics_run_options(args), **corruption_run_options(args)}

    def output_folder(self, options: RunOptions) -> Optional[str]:
        return None if options.extra.get("evaluate") else options.output_dir

    def weights_kind(self, options: RunOptions) -> str:  # noqa: D102
        """Which declared weights of the card the run loads (``finetune`` for ``--task finetune --evaluate``)."""
        return "finetune" if self.name == "finetune" and options.extra.get("evaluate") else "pretrain"

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        from satbench.runtime.device import parse_device
        from satbench.runtime.distributed import broadcast_object, init_distributed, local_device, shutdown
        from satbench.models.features import FeatureExtractor
        from satbench.records.results import make_record

        settings = protocol.settings(LinearSettings)
        if settings.mode != self.mode:
            raise SatbenchError(f"protocol {protocol.name} has mode {settings.mode!r}; the {self.name} task runs "
                                f"mode {self.mode!r} protocols")
        evaluate = bool(options.extra.get("evaluate"))
        check_temperature_options(self.name, settings, options.extra, evaluate, protocol.name)
        from satbench.eval.corruption_eval import check_options as corruption_plan

        plan = corruption_plan(self, options.extra)  # refused before any image is decoded
        if plan is not None and not evaluate:
            raise SatbenchError(f"--corruptions with --task {self.name} evaluates a trained head: add --evaluate "
                                f"(the weights' linear_head), or use --task cached-linear")
        device = parse_device(options.device)
        info = init_distributed(device)
        try:
            device = local_device(device, info)
            norm = protocol_normalization(settings.normalization, dataset)
            extractor = FeatureExtractor(model, normalization=norm, device=str(device), bf16=options.bf16)
            progress = options.progress and info.is_main
            val = dataset.samples("val")
            extra: dict[str, Any] = {"num_classes": dataset.num_classes, "seed": options.seed,
                                     "world_size": info.world_size}
            t0 = time.perf_counter()
            if evaluate:
                from satbench.eval.linear import evaluate_head_predictions

                m, preds = evaluate_head_predictions(extractor, model.linear_head, val, dataset.num_classes, protocol,
                                                     num_workers=options.num_workers, info=info, progress=progress,
                                                     where=str(model.weights.path or "weights"),
                                                     allow_collapsed_features=options.allow_collapsed_features)
                features = m.features
                summary = {"top1": m.acc1, "top5": m.acc5}
                metrics = {"evaluate": True, **m.as_dict()}
                timings = {"total_s": round(time.perf_counter() - t0, 3)}
            else:
                from satbench.eval.linear import train_classifier

                out = options.output_dir
                if out is None:
                    if options.resume:
                        raise SatbenchError("--resume needs --output-dir (the folder holding checkpoint.pth)")
                    out = broadcast_object(str(default_output_dir(self.name, model.card.name, dataset.name,
                                                                  protocol.name)), info)
                res = train_classifier(extractor, dataset.samples("train"), val, dataset.num_classes, protocol,
                                       output_dir=out, resume=options.resume, seed=options.seed,
                                       num_workers=options.num_workers, info=info, progress=progress,
                                       allow_collapsed_features=options.allow_collapsed_features)
                features = res.features
                summary = {"top1": res.best["acc1"], "top5": res.best["acc5"]}
                metrics = {"best": res.best, "last": res.last, "per_epoch": res.history,
                           "effective_lr": res.effective_lr, "resumed_from_epoch": res.resumed_from_epoch}
                timings = {"total_s": round(res.seconds, 3), "seconds_per_epoch": res.seconds_per_epoch}
                extra.update(checkpoint=res.checkpoint, best_checkpoint=res.best_checkpoint, output_dir=str(out))
                preds = res.best_predictions
                if res.held_out is not None:
                    metrics["holdout"] = res.held_out.as_record()
            corrupted = None
            if plan is not None:
                corrupted = _corrupted_head_predictions(extractor, model, dataset, protocol, plan, options, info,
                                                        progress)
            if not info.is_main:
                return None
            record = make_record(task=self.name, model=model.card.name, weights=model.weights.as_dict(),
                                 protocol=protocol.as_record(), dataset=dataset.describe(), metrics=metrics,
                                 summary=summary, extractor=extractor.describe(), timings=timings, extra=extra,
                                 device=extractor.device)
            if features is not None:
                record["features"] = features
            temperature = TEMPERATURE_NOT_HERE if evaluate else TEMPERATURE_NOT_ASKED
            if not evaluate and res.held_out is not None:
                temperature = fit_held_out_temperature(res.held_out, preds, dataset, options.seed)
            attach_classification_statistics(record, dataset, preds, options, "best epoch's head" if not evaluate
                                             else "the released head", temperature=temperature)
            if corrupted is not None:
                import numpy as np

                from satbench.eval.corruption_eval import attach_corruptions
                from satbench.stats.attach import StatsOptions

                clean, by_cond, extraction = corrupted
                attach_corruptions(record, plan, clean["y"], [clean["pred"]],
                                   {cond: [p] for cond, p in by_cond.items()}, split_sha256=dataset.split_sha256("val"),
                                   stats_opts=StatsOptions.from_extra(options.extra), pred_keys=["top1"],
                                   extraction=extraction, metric="top1 of the weights' linear_head, clean and "
                                                                 "corrupted both from the cached val features")
                record["metrics"]["corruptions"]["clean_equals_record_predictions"] = bool(
                    preds is not None and (np.asarray(preds.pred) == clean["pred"]).all())
            return record
        finally:
            shutdown(info)

    def describe_result(self, record: Any) -> str:
        from tabulate import tabulate

        from satbench.eval.repeats import describe_aggregate, is_aggregate

        if is_aggregate(record):
            return describe_aggregate(record)
        m, s = record["metrics"], record["summary"]
        w = record["weights"]
        rows = [["model", record["model"]], ["weights", (w.get("sha256") or "")[:12] or f"random-seed{w.get('seed')}"],
                ["dataset", record["dataset"].get("name")], ["protocol", record["protocol"]["name"]]]
        if m.get("evaluate"):
            rows += [["top-1 (val) [95% CI]", ci_text(record, "top1")], ["top-5 (val)", _fmt(s["top5"])],
                     ["val images", m["n_val"]]]
        else:
            best, last = m["best"], m["last"]
            epochs = len(m["per_epoch"])
            rows += [["best top-1 (val) [95% CI]", f"{ci_text(record, 'top1', best['acc1'])} (epoch {best['epoch'] + 1})"],
                     ["best-epoch top-5", _fmt(best["acc5"])], ["last top-1", _fmt(last["acc1"])],
                     ["epochs", f"{epochs} (resumed at {m['resumed_from_epoch']})" if m["resumed_from_epoch"] else epochs],
                     ["effective lr", f"{m['effective_lr']:g}"], ["checkpoints", record["extra"].get("output_dir", "")]]
        rows += statistics_rows(record)
        return tabulate(rows, tablefmt="simple") + calibration_text(record)


#: ``--temperature-scaling`` without ``--temperature-holdout``: the part of train held out of training.
DEFAULT_TEMPERATURE_HOLDOUT = 0.1

#: Why a linear / fine-tune ``--evaluate`` record has no temperature-scaled errors.
TEMPERATURE_NOT_HERE = ("not available with --evaluate: the released head was trained on the whole train split, so "
                        "no part of train is left that it has not seen to fit a temperature on")
#: Why a linear / fine-tune training record has none.
TEMPERATURE_NOT_ASKED = ("not asked: the head is trained on the whole train split (the protocol); --temperature-scaling "
                         "holds out --temperature-holdout of train for it (a recorded protocol override)")


def check_temperature_options(task: str, settings: LinearSettings, extra: dict[str, Any], evaluate: bool,
                              protocol: str) -> None:
    """``--temperature-scaling`` and ``temperature_holdout`` go together, and not with ``--evaluate`` (one line,
    before any image is decoded)."""
    asked = bool(extra.get("temperature_scaling"))
    held = settings.temperature_holdout > 0
    if asked and evaluate:
        raise SatbenchError(f"--temperature-scaling with --task {task} --evaluate: {TEMPERATURE_NOT_HERE}")
    if held and evaluate:
        raise SatbenchError(f"--temperature-holdout with --task {task} --evaluate: --evaluate trains no head")
    if asked and not held:
        raise SatbenchError(f"--temperature-scaling with --task {task} needs a held-out part of train: protocol "
                            f"{protocol} has temperature_holdout 0 (CLI: --temperature-holdout F, default "
                            f"{DEFAULT_TEMPERATURE_HOLDOUT}; Python: temperature_holdout={DEFAULT_TEMPERATURE_HOLDOUT})")
    if held and not asked:
        raise SatbenchError(f"temperature_holdout {settings.temperature_holdout} holds part of train out of training "
                            f"for temperature scaling only: add --temperature-scaling (Python: temperature_scaling=True)")


def fit_held_out_temperature(held_out: Any, preds: Any, dataset: Any, seed: int) -> Any:
    """``(TemperatureFit, scaled val confidences)`` from the best epoch's logits on the held-out part of train, or why
    not (a string, recorded): a resumed run whose checkpoint predates the kept logits."""
    import numpy as np

    from satbench.stats.temperature import HoldOut, fit_temperature, softmax_confidence

    if held_out.logits is None or preds is None or preds.logits is None:
        return ("left out: the best epoch's logits on the held-out part of train or on val were not kept (resumed "
                "from a checkpoint written before they were)")
    where = HoldOut("train", dataset.split_sha256("train"), tuple(int(i) for i in held_out.indices),
                    held_out.fraction, int(seed), "temperature_holdout of the train split (stratified, seeded with "
                    "--seed), held out of training; logits of the best epoch's head (val transform)")
    fit = fit_temperature(held_out.logits, held_out.labels, where, test_split_sha256=dataset.split_sha256("val"))
    return fit, softmax_confidence(preds.logits, np.asarray(preds.pred), fit.temperature)


def _corrupted_head_predictions(extractor: Any, model: Any, dataset: Any, protocol: Any, plan: Any,
                                options: RunOptions, info: Any, progress: bool) -> Any:
    """``--evaluate --corruptions``: the val features of the protocol's eval view, clean and under every (type,
    severity), through the feature cache (every rank extracts its shard), and the weights' linear_head's top-1 on each
    (rank 0; None on the other ranks): ``({"y", "pred"}, {(type, severity): pred}, extraction account)``."""
    import numpy as np
    import torch

    from satbench.eval.cached_linear import eval_view
    from satbench.eval.corruption_eval import extract_corrupted
    from satbench.eval.extract import extract_views
    from satbench.eval.linear import topk_predictions
    from satbench.eval.linear_head import load_linear_head

    s = protocol.settings(LinearSettings)
    view = eval_view(s.val_resize, s.val_crop)
    val = dataset.samples("val")
    cache = options.feature_cache() if info.is_main else None
    sha = dataset.split_sha256("val")
    kw = dict(split_sha256=sha, cache=cache, batch_size=options.batch_size, num_workers=options.num_workers,
              progress=progress, dist=info)
    clean = extract_views(extractor, val, [view], desc="val features", **kw).get(view.key)
    corrupted = extract_corrupted(extractor, val, [view], plan, desc="val features", **kw)
    if not info.is_main:
        return None
    head = load_linear_head(model.linear_head, extractor.feature_dim, where=str(model.weights.path or "weights"))
    head = head.to(extractor.device).eval()

    y = np.asarray([int(it.label) for it in val], dtype=np.int64)

    def top1(feats: np.ndarray) -> np.ndarray:  # the evaluation's own topk (same tie order)
        with torch.no_grad():
            logits = head(torch.from_numpy(feats).to(extractor.device)).float()
        return topk_predictions(logits, torch.from_numpy(y).to(logits.device))[0]

    return ({"y": y, "pred": top1(clean)}, {c: top1(by_key[view.key]) for c, by_key in corrupted.feats.items()},
            corrupted)


def attach_classification_statistics(record: Any, dataset: Any, preds: Any, options: RunOptions, what: str,
                                     temperature: Any = TEMPERATURE_NOT_ASKED) -> None:
    """Per-image val predictions (``preds``: top-1 class and top-5 hit per val image, val order) -> the record's
    ``summary.ci`` and sidecar (:func:`satbench.stats.attach.attach`); without them, why not (recorded)."""
    import numpy as np

    from satbench.stats.fields import classification_fields
    from satbench.stats.attach import StatsOptions, attach

    if preds is None:
        record["metrics"]["statistics"] = {"error": f"statistics left out: no per-image predictions of the {what} "
                                                    f"(resumed from a checkpoint written before they were kept)"}
        return
    y = np.asarray([int(it.label) for it in dataset.samples("val")], dtype=np.int64)
    c = dataset.num_classes
    fields = classification_fields(y, np.asarray(preds.pred), split_sha256=dataset.split_sha256("val"),
                                   num_classes=c, top5_correct=np.asarray(preds.top5_hit) if c >= 5 else None,
                                   conf=preds.conf, temperature=temperature,
                                   **StatsOptions.from_extra(options.extra).kwargs())
    attach(record, fields)
    if preds.conf is None:
        record["metrics"]["calibration"] = {"error": f"calibration left out: no per-image confidences of the {what} "
                                                     f"(resumed from a checkpoint written before they were kept)"}


def calibration_text(record: Any) -> str:
    """The calibration line under a probe's table (empty without calibration)."""
    from satbench.stats.formatting import calibration_line

    line = calibration_line(record.get("summary") or {})
    return f"\n{line}" if line else ""


def statistics_rows(record: Any) -> list[list[Any]]:
    """``intervals`` / ``predictions`` rows of a probe's terminal table."""
    st = record["metrics"].get("statistics") or {}
    if st.get("error"):
        return [["statistics", st["error"]]]
    boot = st.get("bootstrap")
    if not boot:
        return []
    return [["intervals", f"95% percentile bootstrap over val images, {boot['resamples']} resamples (seed {boot['seed']})"],
            ["predictions", (record.get("predictions") or {}).get("file", "")]]


@register_task
class LinearTask(_TrainedProbeTask):
    name = "linear"
    help = "linear probe on the frozen backbone (satdino-linear-v1; the fast cached grid is task cached-linear)"
    default_protocol = "satdino-linear-v1"
    protocol_task = "linear"
    headline = Headline("top1", "top-1 (%)", table="linear", title="Linear probe top-1 (%)", reference_key="linear",
                        reference_protocol="satdino-linear-v1")
    mode = "head"
    uses_feature_cache = True  # --protocol cached-linear-v1 hands over to the cached-linear task
    supports_corruptions = True  # with --evaluate: the weights' linear_head on the corrupted val split

    def accepts(self, protocol: Any) -> bool:
        return protocol.task == "linear"

    def leaderboard_table(self, record: Any) -> Optional[str]:
        """A ``linear`` record of the cached-heads method (``--task linear --protocol cached-linear-v1`` in an older
        record) belongs with the cached linear probe's runs, never in the paper's linear-probe table."""
        proto = record.get("protocol") if isinstance(record, dict) else None
        content = proto.get("content") if isinstance(proto, dict) else None
        params = content.get("params") if isinstance(content, dict) else None
        if isinstance(params, dict) and params.get("method") == "cached-heads":
            return get_task("cached-linear").leaderboard_table(record)
        return super().leaderboard_table(record)

    def complete_overrides(self, protocol: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        if protocol.params.get("method") == "cached-heads" and ({"lr", "batch_size"} & set(overrides)):
            raise SatbenchError(f"protocol {protocol.name} sweeps learning rates itself; --lr/--train-batch-size do not "
                                f"apply (edit a copy of the protocol YAML instead)")
        return overrides

    def settings_for(self, protocol: Any) -> Optional[type]:
        if protocol.params.get("method") == "cached-heads":
            from satbench.eval.cached_linear_settings import CachedLinearSettings

            return CachedLinearSettings
        return self.settings

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        if protocol.params.get("method") == "cached-heads":  # `--task linear --protocol cached-linear-v1` still works
            if options.extra.get("evaluate") or options.resume or options.output_dir:
                raise SatbenchError(f"protocol {protocol.name} trains no checkpoint; --evaluate/--resume/--output-dir "
                                    f"apply to satdino-linear-v1 and satdino-finetune-v1")
            return get_task("cached-linear").run(model, dataset, protocol, options)
        return super().run(model, dataset, protocol, options)


@register_task
class FinetuneTask(_TrainedProbeTask):
    name = "finetune"
    help = "fine-tune the whole backbone with a linear head (satdino-finetune-v1)"
    default_protocol = "satdino-finetune-v1"
    protocol_task = "finetune"
    headline = Headline("top1", "top-1 (%)", table="finetune", title="Fine-tuning top-1 (%)",
                        reference_key="finetune", reference_protocol="satdino-finetune-v1")
    mode = "full"
