"""What a conversion method is, and the registry that finds one by name (docs/adding_a_method.md).

A method is one package under snnlib/methods/ that registers a `Method`:

  recipe       the ANN it converts, by training recipe: "qcfs" (QCFS activation), "cq" (clamp-and-quantize) or
               "relu" (a plain ReLU twin of the network). Recipes are registered the same way (`Recipe`).
  conversion   the name of the conversion whose SNN it evaluates. A method that simulates a converted network
               differently (SRP's pre-run, COS's calibration) reuses another method's conversion by naming it.
  settings     the JSON schema of its entry under an experiment's `methods:` (defaults filled by the loader)
  variants     the curves one evaluation produces (SRP: one per tau; CQ: one per weight precision), each with
               its label and its latency accounting: `t_pre` steps run before the first read-out step, so the
               latency of a read-out after T steps is t_pre + T.
  run          per batch: the per-step outputs of every variant, and which of the steps recorded by an attached
               operation meter belong to it (so energy counts every step a variant needed, pre-runs included).

The pipeline (stages.py, the Snakemake rules, the reports) asks this registry; it never names a method.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Variant:
    """One curve of a method's evaluation."""
    key: str                 # unique within the method and safe in file names: "", "tau4", "w8"
    label: str               # as tables and plots show it
    t_pre: int = 0           # steps before the first read-out step: latency = t_pre + T
    params: dict = field(default_factory=dict)  # what distinguishes it, as result-row columns (tau, weight_bits)


@dataclass
class VariantRun:
    """One batch of one variant: per-step outputs [T_max, B, C], and the indices of the steps (into what an
    operation meter recorded during the call) that this variant's output depended on, in order (None when the
    run was not metered)."""
    outputs: torch.Tensor
    steps: list[int] | None = None


class Method:
    """Base class: override the class attributes and `variants`, `run`; `convert` only if `conversion` names
    this method itself."""
    name: str = ""
    recipe: str = "qcfs"
    conversion: str = ""
    doc: str = ""            # docs/methods/<page>.md
    summary: str = ""        # one line for tables and `python -m snnlib methods`
    analyses: tuple[str, ...] = ()   # extra DAG stages run on its SNN (SRP: "unevenness")
    settings_schema: dict = {"type": "object", "additionalProperties": False, "properties": {}}

    def variants(self, exp: dict, settings: dict) -> list[Variant]:
        return [Variant("", self.summary or self.name)]

    def t_max(self, exp: dict, settings: dict) -> int:
        """Read-out steps this method is simulated for: its own `T_max` setting where its schema has one (a
        pre-run method whose curves the papers report only at small T), else the experiment's eval.T_max."""
        return settings.get("T_max") or exp["eval"]["T_max"]

    def convert(self, ann: nn.Module, exp: dict, settings: dict, calibration: Callable | None = None) -> nn.Module:
        raise NotImplementedError(f"method {self.name} converts with {self.conversion!r}, not itself")

    def run(self, snn: nn.Module, x: torch.Tensor, T_max: int, exp: dict, settings: dict,
            meter) -> dict[str, VariantRun]:
        raise NotImplementedError

    def evaluator(self, snn: nn.Module, exp: dict, settings: dict) -> "Evaluation":
        """What evaluates one SNN batch by batch; override to keep method-specific statistics across batches."""
        return Evaluation(self, snn, exp, settings)

    def convert_report(self, snn: nn.Module) -> dict:
        """Extra facts for the conversion report (thresholds, initial potentials, ...)."""
        return {}


class Evaluation:
    """Batch by batch: `run(x, T_max, meter)` -> {variant key: VariantRun}; `report()` -> extra report fields.
    `meter` (an attached-on-demand operation meter, or None) is for the method to attach around the steps it
    wants counted."""

    def __init__(self, method: Method, snn: nn.Module, exp: dict, settings: dict):
        self.method, self.snn, self.exp, self.settings = method, snn, exp, settings

    def run(self, x: torch.Tensor, T_max: int, meter) -> dict[str, VariantRun]:
        return self.method.run(self.snn, x, T_max, self.exp, self.settings, meter)

    def report(self) -> dict:
        return {}


class Recipe:
    """How an ANN of one kind is built, trained and viewed. `views` maps the report keys ann_quantized and
    ann_clip to functions that put the network into that view (the quantized ANN and its quantization-free
    limit); a recipe without quantization gives both the same view."""
    name: str = ""
    levels_key: tuple[str, ...] = ()   # where the quantization level count sits in the experiment (QCFS L, CQ T)

    def check(self, exp: dict) -> None:
        """Raise ConfigError for what the schema cannot say."""

    def build(self, exp: dict) -> nn.Module:
        raise NotImplementedError

    def train(self, ctx: Any) -> dict:
        """Train ctx.model in place; return extra report fields (history, ...). ctx: stages.TrainContext."""
        raise NotImplementedError

    def views(self) -> dict[str, Callable[[nn.Module], nn.Module]]:
        raise NotImplementedError

    def final_view(self, model: nn.Module) -> nn.Module:
        """Put the network back into the view it was trained for (what is saved and converted)."""
        return model

    def levels(self, exp: dict) -> int | None:
        if not self.levels_key:
            return None  # no quantization (a ReLU network)
        value: Any = exp
        for k in self.levels_key:
            value = value.get(k) if isinstance(value, dict) else None
        return value


def metering(meter):
    """`with metering(meter):` counts the steps run inside on an attached operation meter, if there is one."""
    return meter.attached() if meter is not None else contextlib.nullcontext()


def settings_defaults(schema: dict) -> dict:
    """The defaults of a settings schema's top-level properties (what an unlisted method runs with)."""
    return {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}


METHODS: dict[str, Method] = {}
RECIPES: dict[str, Recipe] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownNameError(f"unknown method {name!r}; registered methods: {', '.join(sorted(METHODS))} "
                               "(snnlib/methods/; docs/adding_a_method.md says how to add one)") from None


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError(f"unknown training recipe {name!r}; registered: {', '.join(sorted(RECIPES))}") from None


def conversion_owner(name: str) -> Method:
    """The method whose `convert` makes the SNN named `name`."""
    method = get_method(name)
    if method.conversion != method.name:
        raise UnknownNameError(f"{name!r} is not a conversion: method {name} evaluates the {method.conversion!r} SNN")
    return method
