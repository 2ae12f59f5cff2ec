"""Backbone families: architectures with official key names, no I/O.

Importing this package registers every family in :data:`FAMILIES`.
"""

from satbench.models.backbones.base import (
    FAMILIES, BackboneOutput, Family, OptionSpec, count_params, get_family, linear_conv_gflops, register_family
)
from satbench.models.backbones import satdino  # noqa: F401  (registers "satdino")
from satbench.models.backbones import satmae  # noqa: F401  (registers "satmae")
from satbench.models.backbones import scalemae  # noqa: F401  (registers "scalemae")
from satbench.models.backbones import timm_vit  # noqa: F401  (registers "timm")
from satbench.models.backbones import hf_transformers  # noqa: F401  (registers "hf-transformers"; transformers imported on use)
from satbench.models.backbones import torchgeo_zoo  # noqa: F401  (registers "torchgeo"; torchgeo imported on use)

__all__ = ["FAMILIES", "BackboneOutput", "Family", "OptionSpec", "count_params", "get_family", "linear_conv_gflops",
           "register_family"]
from satbench.models.backbones import module  # noqa: F401,E402  (registers "module": satbench.wrap, --model module:<name>)
