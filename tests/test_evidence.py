"""Per-image outcomes, the claims decided by paired tests, the verification of a rerun, the method registry."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snnlib import outcomes
from snnlib.claims import Run, judge
from snnlib.efficiency import neurobench_columns
from snnlib.efficiency_report import efficiency_frame, efficiency_markdown
from snnlib.methods import METHODS, RECIPES, UnknownNameError, get_method
from snnlib.verify import compare_rows

ROOT = Path(__file__).resolve().parents[1]


def test_outcomes_round_trip_and_correctness(tmp_path):
    labels, idx = np.array([0, 1, 2, 1]), np.array([5, 9, 11, 40])
    pred = np.array([[0, 0, 2, 1], [0, 1, 2, 2]])  # [T=2, N=4]
    outcomes.save(tmp_path / "o.npz", labels, idx, {"": pred, "tau4": pred[::-1]})
    o = outcomes.load(tmp_path / "o.npz")
    assert np.array_equal(o.correct(""), [[True, False, True, True], [True, True, True, False]])
    assert np.array_equal(o.predictions["tau4"], pred[::-1]) and o.same_images(o)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind
    other = outcomes.Outcomes(labels, idx[::-1], {})
    assert not o.same_images(other)


def _run(a_right_b_wrong: int, a_wrong_b_right: int, n: int = 1000, seeds: int = 1) -> Run:
    """An experiment whose SRP (tau 4) and QCFS outcomes differ on exactly the given numbers of images at T = 1,
    2 and 4 (and at the same latency), the rest of the images right for both."""
    labels = np.zeros(n, dtype=np.int16)
    T_max = 8
    qcfs = np.zeros((T_max, n), dtype=np.int16)
    srp = np.zeros((T_max, n), dtype=np.int16)
    srp[:, :a_wrong_b_right] = 1          # SRP wrong where QCFS is right
    qcfs[:, n - a_right_b_wrong:] = 1      # QCFS wrong where SRP is right
    evals, anns = {}, {}
    for s in range(seeds):
        evals[(s, "qcfs")] = outcomes.Outcomes(labels, np.arange(n), {"": qcfs})
        evals[(s, "srp")] = outcomes.Outcomes(labels, np.arange(n), {"tau4": srp})
        anns[(s, "qcfs")] = outcomes.Outcomes(labels, np.arange(n), {"ann_quantized": np.zeros(n, np.int16),
                                                                      "ann_clip": np.zeros(n, np.int16)})
    reports = {"qcfs": {"T_max": T_max, "variants": [{"key": "", "t_pre": 0, "params": {}}]},
               "srp": {"T_max": T_max, "variants": [{"key": "tau4", "t_pre": 4, "params": {"tau": 4}}]}}
    return Run("e", list(range(seeds)), evals, anns, reports, {"activation": {"L": 4}})


def _verdict(run: Run, startswith: str) -> dict:
    return next(c for c in judge(run) if c["claim"].startswith(startswith))


def test_claim_flips_to_not_significant_when_the_discordant_count_shrinks():
    strong = _verdict(_run(40, 10), "SRP beats plain QCFS at the same read-out steps")
    assert strong["verdict"] == "supported" and "b/c 40/10" in strong["evidence"]
    # the same direction, a quarter of the discordant images: McNemar cannot tell 10 vs 2.5 from chance after Holm
    weak = _verdict(_run(4, 1), "SRP beats plain QCFS at the same read-out steps")
    assert weak["verdict"] == "not significant" and "b/c 4/1" in weak["evidence"]
    contra = _verdict(_run(10, 40), "SRP beats plain QCFS at the same read-out steps")
    assert contra["verdict"] == "contradicted"
    # one image of 1,000 is never a finding (the old table called +0.10 pp "supported")
    assert _verdict(_run(1, 0), "SRP beats plain QCFS")["verdict"] == "not significant"


def test_claims_pool_seeds_as_pairs_and_judge_both_latency_framings():
    run = _run(4, 1, seeds=3)  # 12 vs 3 discordant pairs over three seeds: p = 0.035 per cell, Holm over 3 cells
    same_T = _verdict(run, "SRP beats plain QCFS at the same read-out steps")
    assert same_T["n_pairs"] == 3000 and same_T["seeds"] == 3 and "b/c 12/3" in same_T["evidence"]
    fair = _verdict(run, "SRP beats plain QCFS at the same total latency")
    assert "tau4 T=1 vs plain T=5" in fair["evidence"]
    match = _verdict(run, "The SNN matches the QCFS ANN")
    assert match["kind"] == "equivalence" and match["margin"] == 0.01


def _rows(acc=(0.5, 0.6)):
    return pd.DataFrame({"experiment": "e", "seed": 0, "method": "qcfs", "variant": "", "T": [1, 2],
                         "accuracy": list(acc), "correct": [round(a * 10) for a in acc], "n_images": 10,
                         "acs": [1.0, 2.0], "git_commit": "abc"})


def test_verification_statuses():
    assert compare_rows(_rows(), _rows(), 0.5) == ("identical", [])
    status, diffs = compare_rows(_rows((0.5, 0.602)), _rows(), 0.5)
    assert status == "within tolerance" and "accuracy at" in diffs[0]
    status, diffs = compare_rows(_rows((0.5, 0.7)), _rows(), 0.5)
    assert status == "different" and "'T': '2'" in diffs[0]
    status, diffs = compare_rows(_rows().iloc[:1], _rows(), 0.5)
    assert status == "different" and "missing in this run" in diffs[0]


def test_a_run_with_the_neurobench_columns_verifies_against_a_reference_without_them():
    """results.csv gained SynOps, Effective_ACs, Effective_MACs, Dense and ActivationSparsity; the committed
    references were written before. The columns both sides have are compared, the new ones only where both
    have them."""
    ref = pd.read_csv(ROOT / "results" / "default" / "results.csv")
    assert "SynOps" not in ref
    run = ref.assign(**neurobench_columns(ref))
    assert compare_rows(run, ref, 0.5) == ("identical", [])
    # an operation count that changed is still caught through the columns the reference has
    changed = run.copy()
    changed.loc[changed.index[0], "acs"] *= 1.01
    status, diffs = compare_rows(changed, ref, 0.5)
    assert status == "different" and diffs[0].startswith("acs at")
    # and once a reference has SynOps, it is compared too
    both = run.copy()
    both.loc[both.index[0], "SynOps"] *= 1.01
    status, diffs = compare_rows(both, run, 0.5)
    assert status == "different" and diffs[0].startswith("SynOps at")


def test_efficiency_tables_of_older_results_get_the_neurobench_columns_from_the_same_numbers():
    old = pd.read_csv(ROOT / "results" / "default" / "results.csv")
    new = old.assign(experiment=old["experiment"] + "_new", **neurobench_columns(old))
    frame = efficiency_frame(pd.concat([old, new], ignore_index=True), [1, 4])  # e.g. paper tables over both
    assert len(frame) and frame["SynOps"].notna().all()
    assert np.allclose(frame["SynOps"], frame["acs"] + frame["macs"], rtol=1e-12)
    assert (frame["Effective_MACs"] == frame["macs"]).all() and (frame["Dense"] == frame["dense_ops"]).all()
    assert "SynOps (M)" in efficiency_markdown(old, [1, 4], "t")


def test_registry_names_every_method_and_refuses_unknown_ones():
    assert {"qcfs", "qcfs_v0zero", "srp", "cos", "cq", "maxnorm", "robustnorm"} <= set(METHODS)
    with pytest.raises(UnknownNameError, match="registered methods: .*srp"):
        get_method("spr")
    for name, m in METHODS.items():
        assert m.recipe in RECIPES, name
        assert get_method(m.conversion).conversion == m.conversion, name  # a conversion owns itself
        assert (ROOT / m.doc).is_file(), f"{name}: {m.doc} missing"


def test_library_and_tests_cite_only_the_repository():
    """Nothing the harness runs may depend on a document outside the repository."""
    # the names are split so that this file does not itself name what it forbids
    outside = ["shared" + "/spec", r"\.\./" + "shared", "srp_qcfs" + r"\.md", "findings" + r"\.md",
               "field" + r"\.md"]
    pattern = re.compile("|".join(outside))
    offenders = []
    for folder in ("snnlib", "tests", "workflow", "benchmarks", "config"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".smk", ".yaml", ".rst", ".md", ".csv"):
                if pattern.search(path.read_text(errors="ignore")):
                    offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
