# Two commands do all set-up on a fresh machine:
#   make reproduce   creates .venv, installs everything, fetches the data, runs the embedded default DAG
#   make test        creates .venv if needed, installs dev deps, fetches the data, runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
# The CPU wheel; on a GPU machine set TORCH_SPEC="torch==2.13.0" with your CUDA index, or any torch 2.11-2.14.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# e.g. REPORT_ARGS="--configfile config/papers/qcfs_srp_cifar100.yaml --config budget=reduced"
REPORT_ARGS ?=

.PHONY: reproduce test data venv dry-run tables clean-logs report

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

data: venv
	PYTHON=$(PY) bash scripts/fetch_data.sh data/raw
	$(PY) -m snnlib.data prepare --root data --datasets mnist fashion_mnist

reproduce: venv data
	$(VENV)/bin/snakemake --cores $(CORES)
	@echo
	@echo "Done. Tables and plots of the embedded default:"
	@echo "  results/default/table.md         (markdown table: QCFS ANN, clip ANN, QCFS SNN, SRP)"
	@echo "  results/default/results.csv      (every (experiment, seed, method, tau, T) cell, with provenance)"
	@echo "  results/default/accuracy_vs_T.png (and .svg)"

test: venv data
	SNNLIB_REQUIRE_DATA=1 $(PY) -m pytest $(PYTEST_ARGS)

# One self-contained HTML file with every table and plot of the results that exist, each with its caption.
report: venv
	$(VENV)/bin/snakemake --report report.html $(REPORT_ARGS)
	@echo "Open report.html in a browser."

dry-run: venv
	$(VENV)/bin/snakemake -n --cores $(CORES)

clean-logs:
	rm -rf logs .snakemake/log
