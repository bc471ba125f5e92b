import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snnlib.config import ConfigError, experiment_hash, load_config, validate

ROOT = Path(__file__).resolve().parents[1]


def minimal(**exp_overrides):
    exp = {"dataset": "mnist", "model": "lenet", "train": {"epochs": 1}}
    exp.update(exp_overrides)
    return {"name": "t", "experiments": {"e": exp}}


def test_default_config_validates_and_fills_defaults():
    cfg = load_config(ROOT / "config" / "default.yaml")
    for exp in cfg["experiments"].values():
        assert exp["activation"]["L"] >= 1 and exp["eval"]["T_max"] >= 1
    m = validate(minimal())["experiments"]["e"]
    assert m["seeds"] == [0] and m["methods"] == {"qcfs": {}} and m["activation"]["lambda_init"] == 8.0
    assert m["train"]["augment"] == {"crop_padding": 0, "flip": False, "autoaugment": False, "cutout": 0}


def test_defaults_section_is_merged_under_experiments():
    raw = minimal()
    raw["defaults"] = {"activation": {"L": 8}, "train": {"lr": 0.02}}
    e = validate(raw)["experiments"]["e"]
    assert e["activation"]["L"] == 8 and e["train"]["lr"] == 0.02 and e["train"]["epochs"] == 1


@pytest.mark.parametrize("mutate,where", [
    (lambda c: c["experiments"]["e"].update(modle="lenet"), "experiments.e"),
    (lambda c: c["experiments"]["e"]["train"].update(lr_rate=0.1), "experiments.e.train"),
    (lambda c: c.update(nmae="x"), "<top level>"),
])
def test_unknown_key_is_named(mutate, where):
    raw = minimal()
    mutate(raw)
    with pytest.raises(ConfigError) as e:
        validate(raw)
    assert where in str(e.value) and "unknown key" in str(e.value)


@pytest.mark.parametrize("exp,needle", [
    ({"model": "vgg17"}, "vgg17"),
    ({"dataset": "cifar1000"}, "cifar1000"),
    ({"activation": {"L": 0}}, "experiments.e.activation.L"),
    ({"eval": {"T_max": 0}}, "experiments.e.eval.T_max"),
    ({"methods": {"srp": {"taus": [-1]}}}, "experiments.e.methods.srp.taus.0"),
    ({"methods": {"srp": {"taus": [2.5]}}}, "experiments.e.methods.srp.taus.0"),
    ({"methods": {"srp": {"rule": "exactly"}}}, "experiments.e.methods.srp.rule"),
    ({"activation": {"lambda_init": -1.0}}, "experiments.e.activation.lambda_init"),
])
def test_impossible_values_and_unknown_names_fail_naming_the_key(exp, needle):
    with pytest.raises(ConfigError) as e:
        validate(minimal(**exp))
    assert needle in str(e.value)


def test_unknown_method_lists_registered_methods():
    with pytest.raises(ConfigError) as e:
        validate(minimal(methods={"qcfs": {}, "spr": {}}))
    assert "experiments.e.methods" in str(e.value) and "'spr'" in str(e.value)
    assert "srp" in str(e.value) and "qcfs" in str(e.value) and "registered methods" in str(e.value)


def test_method_settings_get_their_defaults():
    e = validate(minimal(methods={"qcfs": {}, "srp": {}}))["experiments"]["e"]
    assert e["methods"]["srp"] == {"taus": [4], "rule": "reference"}


def test_training_hash_ignores_methods_and_eval_but_not_the_recipe():
    from snnlib.config import training_hash
    e = validate(minimal())["experiments"]["e"]
    e2 = validate(minimal(methods={"qcfs": {}, "srp": {"taus": [2]}}, eval={"T_max": 8}))["experiments"]["e"]
    assert training_hash(e, "qcfs") == training_hash(e2, "qcfs") != training_hash(e, "relu")
    assert experiment_hash(e) != experiment_hash(e2)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        validate(minimal(model="vgg17"))
    assert "vgg16" in str(e.value)


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_experiment_hash_ignores_seeds_but_not_recipe():
    e = validate(minimal())["experiments"]["e"]
    e2 = copy.deepcopy(e)
    e2["seeds"] = [0, 1, 2]
    assert experiment_hash(e) == experiment_hash(e2)
    e2["train"]["lr"] = 0.05
    assert experiment_hash(e) != experiment_hash(e2)


def test_experiment_hash_ignores_labels_and_the_default_layout_only():
    e = validate(minimal())["experiments"]["e"]
    labelled = copy.deepcopy(e)
    labelled.update(proxy="a proxy", description="d",
                    beside_paper={"tables": ["QCFS-T2"], "dataset": "cifar100", "arch": "resnet20"})
    assert experiment_hash(e) == experiment_hash(labelled)
    assert e["memory_format"] == "contiguous"
    absent = {k: v for k, v in e.items() if k != "memory_format"}  # a run from before the key existed
    assert experiment_hash(absent) == experiment_hash(e)
    cl = copy.deepcopy(e)
    cl["memory_format"] = "channels_last"  # other rounding: another result
    assert experiment_hash(cl) != experiment_hash(e)


def test_checkpoint_interval_is_in_neither_hash():
    """How often training saves changes no weight (tests/test_preemption.py): no rerun, no new checkpoint folder."""
    from snnlib.config import training_hash
    e = validate(minimal())["experiments"]["e"]
    assert e["train"]["checkpoint_every_s"] == 600
    often = copy.deepcopy(e)
    often["train"]["checkpoint_every_s"] = 5
    absent = copy.deepcopy(e)
    del absent["train"]["checkpoint_every_s"]  # a run from before the key existed
    assert experiment_hash(e) == experiment_hash(often) == experiment_hash(absent)
    assert training_hash(e, "qcfs") == training_hash(often, "qcfs") == training_hash(absent, "qcfs")


def test_cli_reports_bad_config_with_exit_code(tmp_path):
    raw = minimal(model="vgg17")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    r = subprocess.run([sys.executable, "-m", "snnlib", "check-config", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "vgg17" in r.stderr and "Traceback" not in r.stderr


DUPLICATES = {
    "top level": ("name: t\nexperiments: {}\nname: u\n", 3, "name", 1),
    "nested": ("name: t\nexperiments:\n  e:\n    dataset: mnist\n    train:\n      epochs: 1\n"
               "    model: lenet\n    train:\n      lr: 0.1\n", 8, "train", 5),
    "deepest": ("name: t\nexperiments:\n  e:\n    train: {epochs: 1, epochs: 2}\n", 4, "epochs", 4),
}


@pytest.mark.parametrize("case", DUPLICATES)
def test_a_duplicate_key_at_any_level_is_refused_with_both_lines(tmp_path, case):
    text, line, key, first = DUPLICATES[case]
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (f"{path} line {line}: duplicate key '{key}' (first at line {first}); "
                            "a YAML mapping takes each key once")


def test_a_merge_key_may_be_overridden_and_a_bad_yaml_error_is_one_line(tmp_path):
    from snnlib.config import load_yaml
    assert load_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n", "m.yaml") == {"a": {"b": 1}, "c": {"b": 2}}
    with pytest.raises(ConfigError) as e:
        load_yaml("name: t\nexperiments: [unclosed\n", "config/x.yaml")
    assert str(e.value).startswith("config/x.yaml line 3: not valid YAML: ") and "\n" not in str(e.value)


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "snnlib", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_missing_config_is_one_line_listing_the_configs_and_exits_2():
    r = run_cli("check-config", "config/no_such.yaml")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: config file config/no_such.yaml not found; the configs live under config/ "
                               "and config/papers/: ")
    for listed in ("config/default.yaml", "config/smoke.yaml", "config/papers/qcfs_srp_cifar10.yaml"):
        assert listed in lines[0]


def test_cli_duplicate_key_is_one_line_and_exits_2(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: t\nexperiments:\n  e: {dataset: mnist, model: lenet}\nexperiments: {}\n")
    r = run_cli("check-config", str(path))
    assert r.returncode == 2
    assert r.stderr == (f"error: {path} line 4: duplicate key 'experiments' (first at line 2); "
                        "a YAML mapping takes each key once\n")
