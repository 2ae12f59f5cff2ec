"""Backbone families: architectures with official key names, no I/O.

Importing this package registers every family in :data:`FAMILIES`.
"""

from .base import FAMILIES, BackboneOutput, Family, OptionSpec, count_params, get_family, linear_conv_gflops, register_family
from . import satdino  # noqa: F401  (registers "satdino")
from . import satmae  # noqa: F401  (registers "satmae")
from . import scalemae  # noqa: F401  (registers "scalemae")
from . import timm_vit  # noqa: F401  (registers "timm")

__all__ = ["FAMILIES", "BackboneOutput", "Family", "OptionSpec", "count_params", "get_family", "linear_conv_gflops",
           "register_family"]
