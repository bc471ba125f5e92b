"""Conversion methods, one package each (docs/adding_a_method.md), found by name through the registry in base.py.

  qcfs/   QCFS training recipe; methods qcfs and qcfs_v0zero   (docs/methods/qcfs.md)
  srp/    SRP's residual-potential pre-run (Algorithm 1 in srp/algorithm.py)   (docs/methods/srp.md)
  cq/     CQ training recipe, encoder and conversion; method cq   (docs/methods/cq.md)
  cos/    COS: per-input offset-spike calibration of the initial potential   (docs/methods/cos.md)
  norm/   ReLU training recipe; MaxNorm and RobustNorm threshold balancing   (docs/methods/norm.md)

Importing this package registers every method; add a new one's import below.
"""
from .base import (METHODS, RECIPES, Evaluation, Method, Recipe, UnknownNameError, Variant, VariantRun,
                   conversion_owner, get_method, get_recipe, metering, register, register_recipe, settings_defaults)
from . import qcfs, srp, cq, cos, norm  # noqa: E402,F401  (registration)

__all__ = ["METHODS", "RECIPES", "Evaluation", "Method", "Recipe", "UnknownNameError", "Variant", "VariantRun",
           "conversion_owner", "get_method", "get_recipe", "metering", "register", "register_recipe",
           "settings_defaults"]
