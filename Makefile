# metarec: build the book, run the tests. Every target creates .venv first if needed.
#
#   make book       HTML book at _build/html/index.html
#   make test       ruff, pytest, every notebook through nbval, the book build (warnings = errors)
#   make notebooks  re-execute every notebook in book/ in place (stores fresh outputs)
#   make browser-test  open every page of the built book in headless Chromium (after `make book`)
#   make notebook-times  run each notebook through nbval, write its wall time into CONTRIBUTING.md
#   make lint       ruff only
#   make clean      remove build outputs and caches (keeps .venv; `make distclean` removes it too)
#
# PYTHON picks the interpreter that creates .venv (3.10 or newer): `make test PYTHON=python3.12`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

# Keep TensorFlow's C++ log lines and GUI backends out of every command.
export TF_CPP_MIN_LOG_LEVEL := 2
export MPLBACKEND := Agg
# Resolve Jupyter kernels from .venv before any user-level kernel of the same name.
export JUPYTER_PREFER_ENV_PATH := 1

# Notebooks run in the kernel "python3" of .venv (ipykernel's own kernelspec, whose "python" is
# replaced by the interpreter that starts it, i.e. .venv/bin/python). MPLBACKEND is removed for
# the kernels: with MPLBACKEND=Agg ipykernel would not switch to its inline backend and figures
# would be missing from the outputs.
NB_ENV := env -u MPLBACKEND
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null | sort)
# Generous: the budget is a few minutes per notebook on 2 CPU cores.
NB_CELL_TIMEOUT := 1800

JB_FLAGS := --builder html -W -n --keep-going
# Tests and notebooks run on both cores; a file's tests (a notebook's cells) stay on one worker,
# in order. `make test XDIST=` runs everything in one process.
XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder
# Tests and notebooks run in one pytest session, so neither phase ends with one core idle. Files
# are handed to the workers in this order, longest first (measured: `make notebook-times` and
# `pytest --durations`), then every other test file and notebook. Files are named one by one:
# pytest keeps the order of file arguments (a directory argument would be collected in tree order).
TEST_FILES := $(shell find tests -name 'test_*.py' 2>/dev/null | sort)
SLOW_FIRST := tests/experiments/test_fair_tuning.py tests/experiments/test_fair.py \
	book/ch04_maml.ipynb book/ch03_base_recommenders.ipynb book/ch07_melu_project.ipynb \
	tests/distribute/test_distribute.py book/ch05_reptile_metasgd.ipynb \
	book/ch12_challenges.ipynb book/ch10_applications.ipynb \
	tests/distribute/test_distribute_cli.py tests/distribute/test_distribute_guard.py \
	book/ch01_background.ipynb
# Every built page in headless Chromium at 1280 px (Debian's chromium + chromium-driver).
# `make test` checks without screenshots (a third of the time); `make browser-test` saves them.
BROWSER_CHECK := $(BIN)/python tools/browser_check.py _build/html --screenshots _build/screenshots

.PHONY: venv book test lint notebooks browser-test notebook-times diagrams clean distclean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "metarec needs Python 3.10 or newer; try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -e . --no-deps
	touch $@

book: venv
	$(BIN)/jupyter-book build . $(JB_FLAGS)

lint: venv
	$(BIN)/ruff check .

# Stops at the first failing step. `--all` rebuilds every page so no warning hides in a cache.
test: venv
	$(BIN)/ruff check .
	$(NB_ENV) $(BIN)/pytest $(XDIST) --nbval-lax --nbval-kernel-name python3 -q \
		$(wildcard $(SLOW_FIRST)) $(filter-out $(SLOW_FIRST),$(TEST_FILES) $(NOTEBOOKS))
	$(BIN)/jupyter-book build . $(JB_FLAGS) --all
	$(BROWSER_CHECK) --no-screenshots

# Checks the book as built last (`make book`); screenshots of every page in _build/screenshots/.
browser-test: venv
	@test -f _build/html/index.html || \
		{ echo "no built book in _build/html: run \`make book\` first" >&2; exit 1; }
	$(BROWSER_CHECK)

# One nbval run per notebook, timed; `make notebook-times NOTEBOOKS="book/a.ipynb ..."` for some.
notebook-times: venv
	$(NB_ENV) $(BIN)/python tools/notebook_times.py $(NOTEBOOKS)

# The book's explanatory SVG diagrams (book/figures/), drawn from code; byte-identical re-runs.
diagrams: venv
	$(BIN)/python tools/diagrams.py

notebooks: venv
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "executing $$nb"; \
		$(NB_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.kernel_name=python3 \
			--ExecutePreprocessor.timeout=$(NB_CELL_TIMEOUT) \
			--ExecutePreprocessor.record_timing=False \
			"$$nb"; \
		$(BIN)/python tools/clean_notebook_outputs.py "$$nb"; \
	done

clean:
	rm -rf _build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
