"""Data-based normalisation baselines, MaxNorm and RobustNorm, on a ReLU twin of the network (docs/methods/norm.md).

recipe.py      training recipe "relu": the network with nn.ReLU, trained like the QCFS ANN without lambda
conversion.py  per-layer scales (max / percentile of the ReLU outputs) and the ReLU -> IF conversion
method.py      the registered methods and their v0 variants
"""
from ..base import register, register_recipe
from .conversion import activation_scales, convert_relu, relu_layers, set_v0, validate
from .method import MAXNORM, ROBUSTNORM, NormMethod
from .recipe import RELU, ReluRecipe

register_recipe(RELU)
register(MAXNORM)
register(ROBUSTNORM)

__all__ = ["activation_scales", "convert_relu", "relu_layers", "set_v0", "validate", "NormMethod", "ReluRecipe",
           "MAXNORM", "ROBUSTNORM", "RELU"]
