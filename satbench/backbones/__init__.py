"""Backbone families: architectures with official key names, no I/O.

Importing this package registers every family in :data:`FAMILIES`.
"""

from .base import FAMILIES, BackboneOutput, Family, count_params, linear_conv_gflops, register_family
from . import satdino  # noqa: F401  (registers "satdino")

__all__ = ["FAMILIES", "BackboneOutput", "Family", "count_params", "linear_conv_gflops", "register_family"]
