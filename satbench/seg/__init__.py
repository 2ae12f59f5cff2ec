"""Semantic segmentation through mmsegmentation (UperNet on Potsdam, Vaihingen, LoveDA).

Importing this package installs the mmcv-lite compatibility layer (:mod:`satbench.runtime.mmcv_compat`) and
makes mmengine's checkpoint writes atomic (:mod:`satbench.seg.atomic_checkpoints`), and registers satbench's mmseg
components (``SatbenchBackbone``, ``SatbenchIoUMetric``, the layer-decay
optimizer constructor). Generated configs name it in ``custom_imports`` so mmseg's own
``tools/train.py`` / ``tools/test.py`` can drive them.
"""

from satbench.seg import atomic_checkpoints
from satbench.runtime import mmcv_compat

mmcv_compat.install()
atomic_checkpoints.install()

from satbench.seg import backbone, metric  # noqa: E402,F401  (registers the mmseg modules)
from satbench.seg.backbone import SatbenchBackbone, default_out_indices  # noqa: E402,F401
