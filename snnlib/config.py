"""Load, default-fill and validate harness configs against workflow/schemas/config.schema.yaml.

Every problem (an unknown key, an unknown model or dataset name, an impossible value) raises ConfigError naming
the key path, before any job runs. A YAML file naming a key twice in one mapping is refused (load_yaml): plain
yaml.safe_load would keep the last value silently.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

from .data import dataset_names
from .methods import METHODS, get_method
from .models import MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping that names one key twice (plain yaml.safe_load keeps the last silently)."""

    def __init__(self, key, line: int, first_line: int, node):
        super().__init__(None, None, f"duplicate key {key!r} (first at line {first_line})", node.start_mark)
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping naming a key twice, at any depth. Merge keys (`<<: *anchor`) may
    still be overridden by the mapping that merges them: that is what they are for."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise DuplicateKeyError(key, line, seen, key_node)
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str):
    """Parse YAML text like yaml.safe_load, but refuse duplicate keys; errors are one-line ConfigErrors naming
    `source` and the line."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as e:
        raise ConfigError(f"{source} line {e.line}: duplicate key {e.key!r} (first at line {e.first_line}); "
                          "a YAML mapping takes each key once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e)
        if getattr(e, "context", None):
            what = f"{what} ({e.context})"
        what = " ".join(what.split())
        raise ConfigError(f"{source}{where}: not valid YAML: {what}") from None


def available_configs() -> list[str]:
    """The configs under config/ and config/papers/, relative to the repository root."""
    folder = REPO_ROOT / "config"
    return [str(p.relative_to(REPO_ROOT)) for p in [*sorted(folder.glob("*.yaml")),
                                                    *sorted((folder / "papers").glob("*.yaml"))]]


def load_schema() -> dict:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    exp = schema["$defs"]["experiment"]["properties"]
    exp["model"]["enum"] = MODELS.names()
    exp["dataset"]["enum"] = dataset_names()
    # every registered method's settings schema, so a misspelt method or setting fails before any job
    exp["methods"]["properties"] = {name: copy.deepcopy(m.settings_schema) for name, m in sorted(METHODS.items())}
    exp["methods"]["additionalProperties"] = False
    return schema


def _fill_defaults(validator_cls):
    """A validator that writes each property's `default` into the instance before validating it."""
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _apply_budget(cfg: dict, budget: str | None, source: str) -> None:
    budgets = cfg.get("budgets")
    if not budgets:
        if budget is not None:
            raise ConfigError(f"{source} defines no budgets, but budget {budget!r} was asked for; "
                              "drop `--config budget=...` for this config")
        cfg["budget"] = None
        return
    if not isinstance(budgets, dict):
        return  # the schema reports it
    budget = budget or cfg.get("default_budget")
    if budget not in budgets:
        raise ConfigError(f"{source}: unknown budget {budget!r}; this config has: {', '.join(budgets)} "
                          "(choose one with `snakemake --config budget=<name>`)")
    chosen = budgets[budget] if isinstance(budgets[budget], dict) else {}
    per_exp = chosen.get("experiments", {})
    unknown = set(per_exp) - set(cfg["experiments"])
    if unknown:
        raise ConfigError(f"{source}: budgets.{budget}.experiments names unknown experiments {sorted(unknown)}")
    for exp_id, exp in cfg["experiments"].items():
        if isinstance(exp, dict):
            cfg["experiments"][exp_id] = deep_merge(deep_merge(exp, chosen.get("all", {})), per_exp.get(exp_id, {}))
    cfg["budget"] = budget


def validate(raw: dict, source: str = "config", budget: str | None = None) -> dict:
    """Return the resolved config (defaults merged and filled, the budget's overrides applied) or raise
    ConfigError. `run_name` is where its results go: <name> or <name>/<budget>."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping, got {type(raw).__name__}")
    cfg = copy.deepcopy(raw)
    defaults = cfg.get("defaults", {})
    if isinstance(cfg.get("experiments"), dict) and isinstance(defaults, dict):
        cfg["experiments"] = {k: deep_merge(defaults, v) if isinstance(v, dict) else v
                              for k, v in cfg["experiments"].items()}
        _apply_budget(cfg, budget, source)
    budget_chosen = cfg.pop("budget", None)
    schema = load_schema()
    validator = _fill_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            msg = e.message
            if e.validator == "additionalProperties" and list(e.absolute_path)[-1:] == ["methods"]:
                msg += f" (unknown method; registered methods: {', '.join(sorted(METHODS))})"
            elif e.validator == "additionalProperties":
                msg += " (unknown key: check its spelling against workflow/schemas/config.schema.yaml)"
            lines.append(f"  {_where(e.absolute_path)}: {msg}")
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines))
    if cfg.get("budgets") and "default_budget" not in cfg:
        raise ConfigError(f"{source}: a config with budgets needs default_budget")
    cfg["budget"] = budget_chosen
    cfg["run_name"] = cfg["name"] if budget_chosen is None else f"{cfg['name']}/{budget_chosen}"
    return cfg


def load_config(path: str | Path, budget: str | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; the configs live under config/ and config/papers/: "
                          f"{', '.join(available_configs()) or 'none found'}")
    raw = load_yaml(path.read_text(), str(path))
    return validate(raw, source=str(path), budget=budget)


def experiment_hash(experiment: dict) -> str:
    """Short stable hash of a resolved experiment (seeds, labels, eval.chunk and train.checkpoint_every_s excluded:
    they change no result). It changes with anything that changes a result: training, the methods and their
    settings, the evaluation."""
    # labels change no result: the seeds index runs, the rest say what a run is compared with or drawn beside
    body = {k: v for k, v in experiment.items() if k not in ("seeds", "description", "paper", "beside_paper", "proxy")}
    if body.get("memory_format") == "contiguous":  # the layout every run had before the key existed
        del body["memory_format"]
    if isinstance(body.get("eval"), dict):  # how the simulation is chunked never changes its results
        body["eval"] = {k: v for k, v in body["eval"].items() if k != "chunk"}
    if isinstance(body.get("train"), dict):  # nor does how often training saves a checkpoint
        body["train"] = {k: v for k, v in body["train"].items() if k != "checkpoint_every_s"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def training_hash(experiment: dict, recipe: str) -> str:
    """Hash of what determines the trained weights of one training recipe (qcfs, cq, relu): the experiment
    without its evaluation settings and methods, so changing `eval` or `methods` re-evaluates but never retrains.
    Training checkpoints live under a folder of this name."""
    return experiment_hash({"recipe": recipe, **{k: v for k, v in experiment.items() if k not in ("eval", "methods")}})


def recipes_of(experiment: dict) -> list[str]:
    """The training recipes an experiment's methods need, in a stable order (each is one trained network)."""
    return sorted({get_method(name).recipe for name in experiment["methods"]})


def conversions_of(experiment: dict) -> list[str]:
    """The conversions (SNNs) an experiment's methods evaluate."""
    return sorted({get_method(name).conversion for name in experiment["methods"]})


def method_settings(experiment: dict, name: str) -> dict:
    """A method's settings in this experiment; a conversion owner that is not listed runs with its defaults."""
    from .methods import settings_defaults
    if name in experiment["methods"]:
        return experiment["methods"][name]
    return settings_defaults(get_method(name).settings_schema)


def get_experiment(cfg: dict, exp_id: str) -> dict:
    try:
        return cfg["experiments"][exp_id]
    except KeyError:
        raise ConfigError(f"config {cfg['name']!r} has no experiment {exp_id!r}; it has: "
                          f"{', '.join(cfg['experiments'])}") from None
