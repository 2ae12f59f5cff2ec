"""Which normalisation a run uses: one decision for every task and command.

Protocols and options name the normalisation with one vocabulary:

* ``model`` (or nothing): the model card's own (returned as ``model_norm``; None lets the feature extractor use the
  card's);
* ``dataset``: the dataset's own statistics (its catalog table, the ``--normalization`` it was opened with, or the
  ones computed from its train split);
* ``table``: the protocol's own per-dataset table (Scale-MAE's kNN protocol), looked up by the dataset's protocol name;
* anything else: a preset, a catalog dataset's table, or ``mean=a,b,c;std=d,e,f``
  (:func:`satbench.data.catalog.resolve_normalization`).

kNN (``eval/knn_protocols``), the linear probes (``eval/task_linear``, ``eval/task_cached_linear``) and
``satbench extract`` (``eval/extract_folder``) all ask :func:`choose_normalization`.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from satbench.data.normalization import Normalization
from satbench.errors import DataError, ProtocolError

MODEL, DATASET, TABLE = "model", "dataset", "table"


def choose_normalization(choice: Optional[str], *, where: str, dataset_norm: Optional[Normalization] = None,
                         dataset_name: str = "", model_norm: Optional[Normalization] = None,
                         table: Optional[Mapping[str, tuple[Sequence[float], Sequence[float]]]] = None,
                         override: Optional[Normalization] = None) -> Optional[Normalization]:
    """The normalisation ``choice`` names (see the module doc); ``override`` (``--normalization``) wins.

    ``where`` names the protocol or option in errors; ``dataset_norm`` / ``dataset_name``: the dataset's statistics
    (None: it has none) and name; ``table``: the protocol's ``{dataset: (mean, std)}``. One-line errors when the
    choice needs statistics that are not there.
    """
    from satbench.data.catalog import resolve_normalization

    if override is not None:
        return override
    if choice is None or choice == MODEL:
        return model_norm
    if choice == DATASET:
        if dataset_norm is None:
            raise DataError(f"{where}: normalization 'dataset' needs a dataset with a normalisation table; "
                            f"{dataset_name or 'the dataset'} has none (pass --normalization: a preset, a catalog "
                            f"dataset, mean=a,b,c;std=d,e,f, or compute)")
        return dataset_norm
    if choice == TABLE:
        table = table or {}
        if dataset_name not in table:
            raise ProtocolError(f"{where} has no normalization statistics for {dataset_name!r} (it knows "
                                f"{', '.join(sorted(table)) or 'none'}); pass --normalization "
                                f"(a preset or mean=..;std=..)")
        mean, std = table[dataset_name]
        return Normalization(f"{where.removeprefix('protocol ')}:{dataset_name}", list(mean), list(std))
    return resolve_normalization(str(choice))
