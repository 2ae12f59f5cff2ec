"""satbench: an evaluation-first benchmark suite for self-supervised remote-sensing backbones."""

__version__ = "0.1.0"
