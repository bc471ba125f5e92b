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
from typing import NamedTuple

import jsonschema
import yaml

from .data import dataset_names
from .methods import METHODS, get_method
from .models import MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
# what `snakemake` runs when no config names experiments
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.yaml"
# Run settings: top-level keys of any config, of config/config.yaml or of `snakemake --config key=value`, applied to
# every experiment after `defaults` and the budget (the schema describes each). null or absent: as the config says.
RUN_SETTINGS = ("budget", "seeds", "epochs", "T_max", "taus", "device")


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


def _top_level_errors(cfg: dict, schema: dict, source: str) -> None:
    """Refuse an unknown top-level key, naming the keys a config takes, and a run setting's impossible value, before
    the budget and the run settings are applied (so the error names the key the user wrote)."""
    props = schema["properties"]
    unknown = [k for k in cfg if k not in props]
    if unknown:
        run = ", ".join(RUN_SETTINGS)
        rest = ", ".join(k for k in props if k not in RUN_SETTINGS)
        raise ConfigError(f"{source} is invalid:\n  <top level>: unknown key {', '.join(map(repr, unknown))}; a config "
                          f"(and `snakemake --config`) takes the run settings {run} and the keys {rest} "
                          "(workflow/schemas/config.schema.yaml)")
    given = {k: cfg[k] for k in RUN_SETTINGS if k in cfg}
    sub = {"type": "object", "properties": {k: props[k] for k in given}}
    errors = sorted(jsonschema.Draft202012Validator(sub).iter_errors(given), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(f"  {_where(e.absolute_path)}: {e.message}"
                                                           for e in errors[:10]))


def _apply_run_settings(cfg: dict, source: str) -> list[str]:
    """Write the run settings seeds, epochs, T_max and taus into every experiment they apply to (after `defaults`
    and the budget). One that applies to no experiment is an error; one that skips some returns a note saying so."""
    exps = {k: v for k, v in cfg["experiments"].items() if isinstance(v, dict)}
    # setting: (the experiments it applies to, the key path it sets, why it skips the others)
    targets = {
        "seeds": (lambda e: True, ("seeds",), ""),
        "epochs": (lambda e: "cq" not in (e.get("methods") or {}), ("train", "epochs"),
                   "CQ trains in stages, whose epochs are cq.stages"),
        "T_max": (lambda e: True, ("eval", "T_max"), ""),
        "taus": (lambda e: "srp" in (e.get("methods") or {}), ("methods", "srp", "taus"), "no srp"),
    }
    notes = []
    for key, (applies, path, why) in targets.items():
        if cfg.get(key) is None:
            continue
        hit = [e for e, exp in exps.items() if applies(exp)]
        missed = [e for e in exps if e not in hit]
        if not hit:
            raise ConfigError(f"{source}: {key}={cfg[key]} applies to no experiment of this config "
                              f"({', '.join(missed)}: {why}); drop it")
        for e in hit:
            node = exps[e]
            for part in path[:-1]:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            if isinstance(node, dict):  # anything else is the schema's to report
                node[path[-1]] = copy.deepcopy(cfg[key])
        if missed:
            notes.append(f"{key}={cfg[key]} applies to {', '.join(hit)}, not to {', '.join(missed)} ({why})")
    return notes


def validate(raw: dict, source: str = "config", budget: str | None = None) -> dict:
    """Return the resolved config (defaults merged and filled, the budget's overrides applied, then the run
    settings) or raise ConfigError. `budget` (the CLI's --budget) wins over the config's own `budget` key.
    `run_name` is where its results go: <name> or <name>/<budget>."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping, got {type(raw).__name__}")
    cfg = copy.deepcopy(raw)
    if budget is not None:
        cfg["budget"] = budget
    schema = load_schema()
    _top_level_errors(cfg, schema, source)
    notes = []
    defaults = cfg.get("defaults", {})
    if isinstance(cfg.get("experiments"), dict) and isinstance(defaults, dict):
        cfg["experiments"] = {k: deep_merge(defaults, v) if isinstance(v, dict) else v
                              for k, v in cfg["experiments"].items()}
        _apply_budget(cfg, cfg.get("budget"), source)
        notes = _apply_run_settings(cfg, source)
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
    cfg["budget"] = cfg.get("budget")
    cfg["run_name"] = cfg["name"] if cfg["budget"] is None else f"{cfg['name']}/{cfg['budget']}"
    cfg["run_notes"] = notes
    return cfg


def load_config(path: str | Path, budget: str | None = None, settings: dict | None = None) -> dict:
    """Load, resolve and validate a config file; `settings` (run settings or any top-level key, as
    `snakemake --config` gives them) are merged over it first."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; the configs live under config/ and config/papers/: "
                          f"{', '.join(available_configs()) or 'none found'}")
    raw = load_yaml(path.read_text(), str(path))
    source = str(path)
    if settings:
        if isinstance(raw, dict):
            raw = deep_merge(raw, settings)
        source += " with " + " ".join(f"{k}={v}" for k, v in settings.items())
    return validate(raw, source=source, budget=budget)


def parse_settings(pairs: list[str]) -> dict:
    """KEY=VALUE strings as `snakemake --config` reads them (epochs=5, seeds=[0,1], device=cuda), as a dict;
    `seeds=0` is `seeds=[0]`."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r}: a setting is KEY=VALUE, e.g. epochs=5 or seeds=[0,1]")
        out[key] = _one_item_lists(key, cli_value(_snakemake_value(text)))
    return out


def _snakemake_value(text: str):
    """A `--config` value as Snakemake parses it: int, float, True/False, empty = None, a YAML list or mapping
    (of strings), else the string."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    if text == "":
        return None
    try:
        value = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader: strings only)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (list, dict)) else text


def _one_item_lists(key: str, value):
    if key in ("seeds", "taus") and isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def cli_value(value):
    """A `--config` value as the config means it. Snakemake parses a top-level value itself (int, float, bool, else
    a string) but keeps every item of a list or mapping a string (seeds=[0,1] arrives as ['0', '1']): those items
    are read as YAML here."""
    def item(v):
        if isinstance(v, str):
            try:
                return yaml.safe_load(v) if v.strip() else v
            except yaml.YAMLError:
                return v
        return cli_value(v)

    if isinstance(value, list):
        return [item(v) for v in value]
    if isinstance(value, dict):
        return {k: item(v) for k, v in value.items()}
    return value


def shown_path(path: str | Path) -> str:
    """A config's path as a user names it: relative to the repository when it lies inside it."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


class RunConfig(NamedTuple):
    cfg: dict     # resolved (validate)
    raw: dict     # what resolves to it: the config with the run's settings merged in (every job reads this)
    path: str     # the config file the experiments come from, as a user names it
    source: str   # path + the command line's settings, for messages


def workflow_config(config: dict, cli: dict | None = None, configfiles=()) -> RunConfig:
    """The config of one Snakemake run, from Snakemake's `config`: config/config.yaml and the --configfile files
    (merged by Snakemake, each into the one before), then every `--config key=value` (`cli`, merged last). When
    none of them names experiments, they are run settings for config/default.yaml. One schema validates it all,
    the command line's keys included: an unknown key is an error naming the valid ones, before any job runs."""
    cli = dict(cli or {})
    raw = copy.deepcopy(dict(config))
    for key in cli:
        if key in raw:
            raw[key] = _one_item_lists(key, cli_value(raw[key]))
    # Snakemake's YAML loader keeps the last of a key given twice; ours refuses it. And two files with experiments
    # would be merged experiment by experiment: one config at a time.
    with_experiments, seen = [], set()
    for f in map(str, configfiles):
        if not Path(f).is_file() or Path(f).resolve() in seen:  # the same file named twice is one file
            continue
        seen.add(Path(f).resolve())
        data = load_yaml(Path(f).read_text(), shown_path(f))
        if isinstance(data, dict) and "experiments" in data:
            with_experiments.append(f)
    if len(with_experiments) > 1:
        raise ConfigError("one config with experiments at a time; these would be merged: "
                          + ", ".join(map(shown_path, with_experiments)))
    if "experiments" in raw:
        path = shown_path(with_experiments[0]) if with_experiments else "the workflow's config"
    else:
        raw = deep_merge(load_yaml(DEFAULT_CONFIG.read_text(), shown_path(DEFAULT_CONFIG)), raw)
        path = shown_path(DEFAULT_CONFIG)
    source = path
    given = [k for k in cli if k in raw]  # a module's host may have --config keys of its own
    if given:
        source += " with `--config " + " ".join(f"{k}={raw[k]}" for k in given) + "`"
    return RunConfig(validate(raw, source), raw, path, source)


def run_config_file(raw: dict, folder: str) -> str:
    """Where a run's jobs read their config: <folder>/config-<digest>.yaml, named by its content, so that it is
    written once and never changes under a running job (another invocation with other settings writes another)."""
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{folder}/config-{digest}.yaml"


def write_run_config(raw: dict, path: str | Path, source: str = "") -> None:
    """Write the config every job of a run reads (run_config_file): the config with the run's settings merged in,
    once. A concurrent writer of the same file (the same content) is left to finish it."""
    from .atomic import WriteError, atomic_write_text
    path = Path(path)
    if path.exists():
        return
    source = " ".join(str(source).splitlines())  # one comment line, whatever the path holds
    header = (f"# Written by the workflow from {source or 'its config'}; every job of the run reads it.\n"
              "# Named by its content: change the config or the command line, never this file.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write_text(path, header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    except WriteError:
        if not path.exists():
            raise


def experiment_hash(experiment: dict) -> str:
    """Short stable hash of a resolved experiment (seeds, labels, eval.chunk and train.checkpoint_every_s excluded:
    they change no result). It changes with anything that changes a result: training, the methods and their
    settings, the evaluation."""
    # labels change no result: the seeds index runs, the rest say what a run is compared with or drawn beside
    # (`proxy` stays in: it always was, and runs made before this list grew keep their hashes)
    body = {k: v for k, v in experiment.items() if k not in ("seeds", "description", "paper", "beside_paper")}
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
