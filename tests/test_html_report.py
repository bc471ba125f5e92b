"""`snakemake --report`: one self-contained HTML file holding every table and plot the rules mark report(...), each
with a caption stating T vs tau + T, the seeds that ran, the budget and the energy cost table."""
import base64
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from docutils.core import publish_parts

from snnlib.config import load_config
from snnlib.metrics import HOROWITZ_45NM_FP32
from snnlib.report_facts import caption_facts, results_files_facts
from test_workflow import ROOT, SNAKEMAKE, have_mnist

SMOKE = ROOT / "config" / "smoke.yaml"
CHROMIUM = Path(os.environ.get("SNNLIB_CHROMIUM", "/usr/bin/chromium"))  # Debian's package (make browser)
# headless as root in a container, and no attempt to reach the network (a closed one refuses every connection)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CAPTIONS = ROOT / "workflow" / "report"
# a report(...) output of a rule, e.g. report(f"{RES}/table.md", caption="../report/table.rst", ...)
REPORT_CALL = re.compile(r'report\(\s*f?"(?P<path>[^"]+)"\s*,\s*caption="(?P<caption>[^"]+)"')
COSTS = [f"MAC {HOROWITZ_45NM_FP32['mac_pj']} pJ", f"AC {HOROWITZ_45NM_FP32['ac_pj']} pJ"]


def registered_per_run_outputs() -> dict[str, str]:
    """{path template under {RES}: caption file name} of every report(...) output in workflow/rules/*.smk, i.e.
    what one run of a config registers (the papers' tables, built across runs, are not part of a run's DAG)."""
    found = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for m in REPORT_CALL.finditer(smk.read_text()):
            if m["path"].startswith("{RES}/"):
                found[m["path"]] = Path(m["caption"]).name
    return found


def embedded_blob(html: str, name: str) -> dict:
    """The report's `var <name> = {...}` JSON object."""
    m = re.search(rf"var {name} = (?=\{{)", html)
    assert m, f"no {name} blob in the report"
    return json.JSONDecoder().raw_decode(html[m.end():])[0]


def embedded_results(html: str) -> dict:
    """The report's `var results = {...}` blob: path -> name, caption (HTML), mime type, base64 data URI, ..."""
    return embedded_blob(html, "results")


def decoded(entry: dict) -> bytes:
    header, payload = entry["data_uri"].split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64"), header
    return base64.b64decode(payload)


class _References(HTMLParser):
    """Every src/href of the page's tags, and its <link> tags."""

    def __init__(self):
        super().__init__()
        self.refs, self.links = [], 0

    def handle_starttag(self, tag, attrs):
        self.links += tag == "link"
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "data")]


def render_caption(name: str, cfg: dict, config_path: str, inputs: list[str], rule: str = "aggregate",
                   results_files: list[str] = ()) -> str:
    """A caption rendered the way Snakemake 9 does (snakemake/report/__init__.py: Jinja2 with trim_blocks and
    lstrip_blocks, then docutils to HTML), but strict: an undefined name or an RST warning fails."""
    facts = caption_facts(cfg, config_path, f"runs/{cfg['run_name']}")
    facts["results_files"] = {r["path"]: r for r in results_files_facts(results_files)}

    class Inputs(list):
        pass

    inp = Inputs(inputs)
    inp.results = list(results_files)
    snakemake = SimpleNamespace(config={"report_facts": facts}, input=inp, output=[], params=SimpleNamespace(),
                                wildcards=SimpleNamespace(), rule=rule)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    text = env.from_string((CAPTIONS / f"{name}.rst").read_text()).render(snakemake=snakemake)
    return publish_parts(text, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})["body"]


def test_every_report_output_has_a_caption_file():
    outs = registered_per_run_outputs()
    assert {"{RES}/table.html", "{RES}/accuracy_vs_T.png"} <= set(outs)
    # the report offers a .md file only as a download: every table is registered as its .html twin
    assert not [p for p in outs if p.endswith(".md")]
    for caption in set(outs.values()) | {"paper_tables.rst", "workflow.rst"}:
        assert (CAPTIONS / caption).is_file(), caption


@pytest.mark.parametrize("config_path,budget", [("config/papers/qcfs_srp_cifar100.yaml", "reduced"),
                                                ("config/default.yaml", None)])
def test_captions_state_latency_seeds_budget_and_costs(config_path, budget):
    cfg = load_config(ROOT / config_path, budget)
    res = f"runs/{cfg['run_name']}"
    exp_id, exp = next(iter(cfg["experiments"].items()))
    inputs = [f"{res}/{exp_id}/seed{s}/eval/qcfs.json" for s in exp["seeds"]]
    for name in ("table", "accuracy_vs_T", "unevenness", "efficiency", "workflow", "claims", "methods",
                 "verification"):
        html = render_caption(name, cfg, config_path, inputs)
        assert "tau + T" in html, name
        assert f"seeds {', '.join(str(s) for s in exp['seeds'])}" in html, name
        assert exp_id in html and all(c in html for c in COSTS), name
        if budget:
            assert f"Budget <tt class=\"docutils literal\">{budget}</tt>" in html, name
        else:
            assert "No budgets" in html, name
    # the unevenness caption only lists the experiments whose runs fed it: one here, not the whole config
    other = [e for e in cfg["experiments"] if e != exp_id]
    assert not any(f">{e}<" in render_caption("unevenness", cfg, config_path, inputs) for e in other)


def test_paper_captions_list_every_results_file(tmp_path):
    csv = tmp_path / "results" / "cfg" / "reduced" / "results.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("experiment,seed,T\ne1,0,1\ne1,2,1\ne2,1,1\n")
    cfg = load_config(SMOKE)
    for name in ("paper_tables", "efficiency"):
        html = render_caption(name, cfg, "config/smoke.yaml", [str(csv)], rule="paper_tables",
                              results_files=[str(csv)])
        assert "e1: seeds 0, 2; e2: seeds 1" in html and "budget: reduced" in html, name
        assert "tau + T" in html and all(c in html for c in COSTS), name
    assert "none yet" in render_caption("paper_tables", cfg, "config/smoke.yaml", [], rule="paper_tables")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """The smoke DAG run in a scratch directory, then `snakemake --report report.html` there."""
    if not have_mnist() and not os.environ.get("SNNLIB_REQUIRE_DATA"):
        pytest.skip("MNIST not prepared (run `make data`)")
    work = tmp_path_factory.mktemp("smoke_report")
    args = SNAKEMAKE + ["-d", str(work), "--configfile", str(SMOKE)]
    r = subprocess.run(args + ["--cores", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(args + ["--report", "report.html"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, (work / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.data
def test_smoke_report_is_one_self_contained_file_with_every_registered_output(smoke_report):
    work, html = smoke_report
    parser = _References()
    parser.feed(html)
    external = [r for r in parser.refs if not r[2].startswith(("data:", "#", "javascript:"))]
    assert not external and parser.links == 0, external
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)

    cfg = load_config(SMOKE)
    res = "runs/" + cfg["run_name"]
    expected = {tmpl.replace("{RES}", res): caption for tmpl, caption in registered_per_run_outputs().items()}
    if not any("beside_paper" in exp for exp in cfg["experiments"].values()):
        del expected[f"{res}/beside_papers.png"]  # made only for proxy runs that name the papers' curves
    results = embedded_results(html)
    assert set(results) == set(expected)
    for path, entry in results.items():
        assert entry["name"] == Path(path).name
        assert decoded(entry) == (work / path).read_bytes(), f"{path}: embedded bytes differ from the file"
    png = [p for p in expected if p.endswith(".png")]
    assert png and all(results[p]["mime_type"] == "image/png" for p in png)
    html_pages = [p for p in expected if p.endswith(".html")]
    assert html_pages and all(results[p]["mime_type"] == "text/html" for p in html_pages)
    table = decoded(results[f"{res}/table.html"]).decode()
    assert "<td>SNN, QCFS</td>" in table and "SRP tau=4" in table and "<th>T=8</th>" in table


@pytest.mark.slow
@pytest.mark.data
def test_smoke_report_captions_state_latency_seeds_budget_and_costs(smoke_report):
    _, html = smoke_report
    cfg = load_config(SMOKE)
    seeds = ", ".join(str(s) for s in cfg["experiments"]["mnist_lenet"]["seeds"])
    captions = {path: entry["caption"] for path, entry in embedded_results(html).items()}
    for path, caption in captions.items():
        assert "tau + T" in caption, path
        assert f"seeds {seeds}" in caption and "mnist_lenet" in caption, path
        assert "No budgets" in caption and "config/smoke.yaml" in caption, path
        assert all(c in caption for c in COSTS) and HOROWITZ_45NM_FP32["source"] in caption, path
        assert "{{" not in caption and "{%" not in caption, path
    # each file carries its own caption (the efficiency caption, wherever its rule is)
    for path, caption in captions.items():
        if Path(path).name in ("efficiency.md", "accuracy_vs_energy.png"):
            assert "Energy cost table" in caption and "pre-run" in caption, path
    m = re.search(r"var workflow_desc = (\"(?:[^\"\\]|\\.)*\")", html)
    assert m and "tau + T" in json.loads(m.group(1))


def embedded_categories(html: str) -> dict:
    """The report's `var categories = {...}` blob: category -> subcategory -> [result paths]."""
    return embedded_blob(html, "categories")


def playwright_or_skip():
    """Playwright's sync API, driving Debian's Chromium; a skip naming what is missing (a failure in CI, which sets
    SNNLIB_REQUIRE_BROWSER=1: there a skipped browser test would hide a broken report)."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (make browser: Debian's chromium package)"
    if missing:
        if os.environ.get("SNNLIB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SNNLIB_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return sync_playwright


def open_result(page, report: Path, category: str, path: str) -> None:
    """From a freshly loaded report: the category in the menu, then the view button (the first link) in the row of
    the result listed as `path`."""
    page.goto(report.as_uri())
    page.get_by_text(category, exact=True).first.click()
    row = page.locator("tr").filter(has=page.get_by_role("cell", name=path, exact=True))
    row.locator("a").first.click()


@pytest.mark.slow
@pytest.mark.data
def test_every_report_table_is_visible_in_headless_chromium(smoke_report, tmp_path):
    """The report opened in headless Chromium and clicked through like a reader would: every registered page shows
    inline (in the viewer's frame), each table page its tables laid out with a real size and the run's numbers in
    the cells, and every plot is an image with pixels; no script error on the way. SNNLIB_REPORT_SCREENSHOT=<png>
    keeps a screenshot of the accuracy table (the README's)."""
    sync_playwright = playwright_or_skip()
    work, html = smoke_report
    results, categories = embedded_results(html), embedded_categories(html)
    category_of = {p: c for c, subs in categories.items() for paths in subs.values() for p in paths}
    pages = sorted(p for p in results if p.endswith(".html"))
    images = sorted(p for p in results if p.endswith(".png"))
    assert pages and images
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            for path in pages:
                open_result(page, work / "report.html", category_of[path], path)
                frame = page.frame_locator("iframe")
                frame.locator("h1").first.wait_for(state="visible", timeout=15_000)
                if path.endswith("/verification.html"):  # a verdict in words (the smoke run has no reference)
                    assert "Verification" in frame.locator("h1").first.inner_text()
                    continue
                table = frame.locator("table").first
                table.wait_for(state="visible", timeout=15_000)
                box = table.bounding_box()
                assert box and box["width"] > 200 and box["height"] > 40, (path, box)
                assert frame.locator("tr").count() >= 2, path
                if path.endswith("/table.html"):
                    assert frame.get_by_role("cell", name="SNN, QCFS", exact=True).first.is_visible()
                    shot = os.environ.get("SNNLIB_REPORT_SCREENSHOT")
                    page.screenshot(path=shot or str(tmp_path / "table.png"))
            for path in images:
                open_result(page, work / "report.html", category_of[path], path)
                # the plot itself (not the logo) is shown, decoded, with real pixels
                page.wait_for_function("uri => [...document.images].some(i => i.src === uri && i.complete "
                                       "&& i.naturalWidth > 100 && i.naturalHeight > 100 && i.offsetWidth > 100)",
                                       arg=results[path]["data_uri"], timeout=15_000)
        finally:
            browser.close()
    assert not errors, errors
