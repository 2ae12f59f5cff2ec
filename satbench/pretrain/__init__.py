"""SatDINO pretraining, as the official ``satdino/main_satdino.py`` computes it (spec section 2).

Modules, one job each: :mod:`.config` (protocol files + ``--set`` overrides), :mod:`.augment` (multi-crop
views with per-view GSD), :mod:`.data` (pretraining image sources), :mod:`.head` (DINOHead, GSD read-out,
multi-crop wrapper), :mod:`.loss` (DINO loss with centring, GSD loss), :mod:`.schedules`,
:mod:`.distributed` (torchrun / DDP), :mod:`.checkpoint` (atomic save, resume, teacher export) and
:mod:`.trainer` (the loop).
"""
