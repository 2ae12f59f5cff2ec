"""The process a run lives in: devices, distributed ranks, resources, plug-ins, seeds, the mmcv shim."""
