"""Multi-scale weighted kNN, exactly as SatDINO evaluates (spec 3.3): the names of satbench 0.2.0's ``eval/knn.py``.

The kNN lives in three modules now: :mod:`satbench.eval.knn_search` (neighbour search: FAISS on CPU, exact torch
top-k on GPU, bounded memory), :mod:`satbench.eval.knn_vote` (DINO's vote, top-1/top-5, :func:`knn_classify`) and
:mod:`satbench.eval.knn_run` (the engine over a dataset: settings -> views -> one extraction -> search and vote per
view). The record is built by the task (:func:`satbench.eval.task_knn.knn_record`); :func:`run_knn` is evaluate +
record, for scripts and plug-ins written against the earlier module.
"""

from __future__ import annotations

from satbench.eval.knn_run import KnnRun, clip_ks, evaluate_knn
from satbench.eval.knn_search import BACKENDS, TIE_MARGIN, TORCH_TRAIN_ALIGN, default_block_bytes, knn_search
from satbench.eval.knn_search import l2_normalize, resolve_backend
from satbench.eval.knn_vote import EXP_OVERFLOW, EXP_UNDERFLOW, VOTE_FORMS, KnnResult, knn_classify, knn_vote
from satbench.eval.knn_vote import knn_vote_form, knn_vote_with_form, per_image_predictions, topk_accuracy
from satbench.eval.task_knn import knn_record, run_knn

__all__ = ["BACKENDS", "EXP_OVERFLOW", "EXP_UNDERFLOW", "KnnResult", "KnnRun", "TIE_MARGIN", "TORCH_TRAIN_ALIGN",
           "VOTE_FORMS", "clip_ks", "default_block_bytes", "evaluate_knn", "knn_classify", "knn_record", "knn_search",
           "knn_vote", "knn_vote_form", "knn_vote_with_form", "l2_normalize", "per_image_predictions",
           "resolve_backend", "run_knn", "topk_accuracy"]
