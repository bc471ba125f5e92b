# Two commands do all set-up on a fresh machine:
#   make reproduce   creates .venv, installs everything, fetches the data, runs the embedded default DAG into runs/
#                    and verifies every result against the committed reference in results/default/
#   make test        creates .venv if needed, installs dev deps, fetches the data, runs the whole test suite
#   make test-fast   the quick tier only (no test marked slow or slurm): about a minute on 2 cores
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
# The CPU wheel; on a GPU machine set TORCH_SPEC="torch==2.13.0" with your CUDA index, or any torch 2.11-2.14.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# e.g. REPORT_ARGS="--configfile config/papers/qcfs_srp_cifar100.yaml --config budget=reduced"
REPORT_ARGS ?=
# Run settings for reproduce, reference and dry-run (config/README.md), e.g. SETTINGS="budget=smoke epochs=5 device=cuda"
SETTINGS ?=
CONFIG_FLAGS = --configfile $(CONFIG)$(if $(strip $(SETTINGS)), --config $(SETTINGS))

.PHONY: reproduce reference test test-fast browser data venv dry-run tables clean-logs report report-papers lint

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

data: venv
	PYTHON=$(PY) bash scripts/fetch_data.sh data/raw
	$(PY) -m snnlib.data prepare --root data --datasets mnist fashion_mnist

# CONFIG=config/claims.yaml make reproduce: the same for another config (its reference: results/<name>/)
CONFIG ?= config/default.yaml
RUN_NAME = $(shell $(PY) -m snnlib check-config $(CONFIG) --run-name $(addprefix --set ,$(SETTINGS)))

reproduce: venv data
	$(VENV)/bin/snakemake --cores $(CORES) $(CONFIG_FLAGS)
	@echo
	@echo "Tables and plots of this run: runs/$(RUN_NAME)/ (table.md, claims.md, methods.md, results.csv, *.png)"
	@echo
	$(PY) -m snnlib verify --run runs/$(RUN_NAME) --reference results/$(RUN_NAME)

# Make the finished run of CONFIG the committed reference (then commit results/<name>/).
reference: venv
	$(PY) -m snnlib promote --run runs/$(RUN_NAME) --reference results/$(RUN_NAME) \
		--command "snakemake --cores $(CORES) $(CONFIG_FLAGS)"

test: venv data browser
	SNNLIB_REQUIRE_DATA=1 $(PY) -m pytest --durations=30 $(PYTEST_ARGS)

# Everything not marked slow (end-to-end runs) or slurm (a local scheduler): what to run while editing.
test-fast: venv data
	SNNLIB_REQUIRE_DATA=1 $(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# Debian's Chromium for the report's browser test (installed where root and apt-get allow; skipped elsewhere).
browser:
	bash scripts/install_browser.sh

# One self-contained HTML file with every table and plot of the results that exist, each with its caption.
report: venv
	$(VENV)/bin/snakemake --report report.html $(REPORT_ARGS)
	@echo "Open report.html in a browser."

# The papers' tables beside ours as one HTML file. They are regenerated first (seconds, nothing is trained; the
# committed files come out byte-identical), so that every file in the report carries Snakemake's metadata.
report-papers: venv
	$(VENV)/bin/snakemake --cores 1 paper_tables --forcerun paper_tables
	$(VENV)/bin/snakemake --report report_papers.html paper_tables
	@echo "Open report_papers.html in a browser."

dry-run: venv
	$(VENV)/bin/snakemake -n --cores $(CORES) $(CONFIG_FLAGS)

# What the Snakemake workflow catalog checks (tests/test_workflow_catalog.py runs the same): the linter, the format.
lint: venv
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow

clean-logs:
	rm -rf logs .snakemake/log
