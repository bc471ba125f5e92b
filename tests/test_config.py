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
    labelled.update(description="d",
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


# ------------------------------------------------------------------------------------- run settings (--config)

RUN_SETTINGS = ("budget", "seeds", "epochs", "T_max", "taus", "device")
DEFAULT = ROOT / "config" / "default.yaml"
CIFAR10 = ROOT / "config" / "papers" / "qcfs_srp_cifar10.yaml"


def default_raw():
    from snnlib.config import load_yaml
    return load_yaml(DEFAULT.read_text(), str(DEFAULT))


def test_an_unknown_top_level_key_names_every_key_a_config_takes():
    with pytest.raises(ConfigError) as e:
        validate({**default_raw(), "budgte": "smoke"}, "x.yaml")
    msg = str(e.value)
    assert "unknown key 'budgte'" in msg and all(k in msg for k in RUN_SETTINGS)
    assert all(k in msg for k in ("name", "experiments", "report_T", "data_root"))


@pytest.mark.parametrize("setting,needle", [
    ({"seeds": [0, 0]}, "seeds: [0, 0] has non-unique elements"),
    ({"seeds": ["a"]}, "seeds.0: 'a' is not of type 'integer'"),
    ({"epochs": -1}, "epochs: -1 is less than the minimum of 0"),
    ({"T_max": 0}, "T_max: 0 is less than the minimum of 1"),
    ({"taus": [0]}, "taus.0: 0 is less than the minimum of 1"),
    ({"device": "gpu"}, "device: 'gpu' does not match"),
])
def test_an_impossible_setting_is_named(setting, needle):
    with pytest.raises(ConfigError) as e:
        validate({**default_raw(), **setting})
    assert needle in str(e.value)


def test_settings_apply_to_every_experiment_after_the_budget():
    from snnlib.config import load_config
    cfg = load_config(CIFAR10, "smoke", {"seeds": [0, 1], "epochs": 5, "T_max": 16, "taus": [1, 2]})
    smoke = load_config(CIFAR10, "smoke")
    for exp_id, exp in cfg["experiments"].items():
        assert smoke["experiments"][exp_id]["seeds"] == [0]  # the budget's
        assert exp["seeds"] == [0, 1] and exp["train"]["epochs"] == 5 and exp["eval"]["T_max"] == 16
        assert exp["methods"]["srp"] == {"taus": [1, 2], "rule": "reference"}
        # everything else as the budget made it
        assert exp["train"]["max_samples"] == smoke["experiments"][exp_id]["train"]["max_samples"]
    assert cfg["run_name"] == "qcfs_srp_cifar10/smoke" and cfg["run_notes"] == []


def test_a_budget_setting_in_the_config_and_the_cli_budget():
    from snnlib.config import load_config
    assert load_config(CIFAR10, settings={"budget": "reduced"})["run_name"] == "qcfs_srp_cifar10/reduced"
    assert load_config(CIFAR10, "smoke", {"budget": "reduced"})["run_name"] == "qcfs_srp_cifar10/smoke"


def test_a_setting_for_no_experiment_is_an_error_and_for_some_a_note():
    from snnlib.config import load_config
    with pytest.raises(ConfigError, match="epochs=5 applies to no experiment.*cq.stages"):
        load_config(ROOT / "config" / "papers" / "cq_cifar10.yaml", "smoke", {"epochs": 5})
    with pytest.raises(ConfigError, match=r"taus=\[2\] applies to no experiment.*no srp"):
        load_config(ROOT / "config" / "papers" / "cq_cifar10.yaml", "smoke", {"taus": [2]})
    cfg = load_config(DEFAULT, settings={"epochs": 1})
    assert cfg["experiments"]["mnist_lenet"]["train"]["epochs"] == 1
    assert cfg["experiments"]["mnist_lenet_cq"]["cq"]["stages"] == {"relu": 2, "clamp": 1, "quantize": 1}
    assert cfg["run_notes"] == ["epochs=1 applies to mnist_lenet, fashion_vgg, not to mnist_lenet_cq "
                                "(CQ trains in stages, whose epochs are cq.stages)"]


def test_the_hash_changes_with_the_settings_that_change_results_only():
    base = validate(default_raw())["experiments"]
    for setting, changes in [({"epochs": 9}, True), ({"T_max": 9}, True), ({"taus": [1]}, True),
                             ({"seeds": [5, 6]}, False), ({"device": "cpu"}, False), ({"budget": None}, False)]:
        exps = validate({**default_raw(), **setting})["experiments"]
        for exp_id in ("mnist_lenet", "fashion_vgg"):
            assert (experiment_hash(exps[exp_id]) != experiment_hash(base[exp_id])) == changes, setting


def test_the_null_settings_of_config_config_yaml_change_nothing():
    """config/config.yaml (all null) is merged under every run from the repository root: the references' hashes
    (results/*/results.csv, config_hash) must stay what they were."""
    nulls = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert set(nulls) == set(RUN_SETTINGS) and not any(nulls.values())
    with_nulls = validate({**default_raw(), **nulls})["experiments"]
    assert {e: experiment_hash(x) for e, x in with_nulls.items()} == {
        "mnist_lenet": "6bc2ac0d8a09", "fashion_vgg": "d8598c76a23b", "mnist_lenet_cq": "35defd094e3c"}


def test_workflow_config_reads_snakemakes_config_and_the_command_line(tmp_path):
    from snnlib.config import workflow_config
    # nothing names experiments: settings for config/default.yaml; list items arrive as strings from the CLI
    run = workflow_config({"seeds": ["0", "1"], "taus": 2}, {"seeds": ["0", "1"], "taus": 2})
    assert run.path == "config/default.yaml" and "--config seeds=[0, 1] taus=[2]" in run.source
    assert run.cfg["experiments"]["mnist_lenet"]["seeds"] == [0, 1]
    assert run.cfg["experiments"]["mnist_lenet"]["methods"]["srp"]["taus"] == [2]
    assert run.raw["name"] == "default" and run.raw["seeds"] == [0, 1]
    # a config file's own keys win over nothing, and its path is shown as the user names it
    cifar = yaml.safe_load(CIFAR10.read_text())
    run = workflow_config({**cifar, "budget": "smoke"}, {"budget": "smoke"}, [str(CIFAR10)])
    assert run.path == "config/papers/qcfs_srp_cifar10.yaml" and run.cfg["run_name"] == "qcfs_srp_cifar10/smoke"
    # two configs with experiments would be merged experiment by experiment: refused
    with pytest.raises(ConfigError, match="one config with experiments at a time"):
        workflow_config(cifar, {}, [str(CIFAR10), str(DEFAULT)])
    # Snakemake's YAML loader keeps the last of a duplicated key; the workflow refuses it as load_config does
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: t\nexperiments: {}\nname: u\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        workflow_config({"name": "u", "experiments": {}}, {}, [str(dup)])


def test_the_run_config_file_is_named_by_its_content(tmp_path):
    from snnlib.config import load_config, run_config_file, write_run_config
    raw = {**default_raw(), "epochs": 2}
    path = run_config_file(raw, str(tmp_path))
    assert path != run_config_file({**raw, "device": "cuda"}, str(tmp_path))
    assert path == run_config_file(dict(reversed(list(raw.items()))), str(tmp_path))
    write_run_config(raw, path, "config/default.yaml with `--config epochs=2`")
    assert load_config(path)["experiments"] == validate(raw)["experiments"]
    before = Path(path).read_text()
    write_run_config(raw, path, "another source")  # written once, never rewritten
    assert Path(path).read_text() == before


@pytest.mark.slow
def test_cli_check_config_takes_settings():
    r = run_cli("check-config", "config/papers/qcfs_srp_cifar10.yaml", "--set", "budget=smoke", "--set",
                "seeds=[0,1]", "--run-name")
    assert r.returncode == 0 and r.stdout == "qcfs_srp_cifar10/smoke\n", r.stderr
    r = run_cli("check-config", "config/default.yaml", "--set", "epochs=1")
    assert r.returncode == 0 and "note: epochs=1 applies to mnist_lenet, fashion_vgg" in r.stdout
    r = run_cli("check-config", "config/default.yaml", "--set", "budgte=smoke")
    assert r.returncode == 2 and "unknown key 'budgte'" in r.stderr


def test_check_config_reads_a_setting_as_snakemake_config_does():
    from snakemake.cli import parse_config

    from snnlib.config import _one_item_lists, cli_value, parse_settings
    pairs = ["seeds=[0,1]", "epochs=5", "device=cuda:1", "budget=smoke", "taus=4", "T_max=16", "data_root=/x/y",
             "energy_costs={mac_pj: 4.5, source: me}", "report_T=[1, 2]"]
    via_snakemake = {k: _one_item_lists(k, cli_value(v)) for k, v in parse_config(pairs).items()}
    assert parse_settings(pairs) == via_snakemake
    assert via_snakemake["seeds"] == [0, 1] and via_snakemake["taus"] == [4]
    assert via_snakemake["energy_costs"] == {"mac_pj": 4.5, "source": "me"}
