# Thin wrappers; the logic lives in pyproject.toml, _config.yml and tests/.
# Needs Python 3.11+ as $(PYTHON) (default: python3) and make. Everything else installs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
JOBS   ?= 2
# Kernels started by Jupyter resolve "python" through PATH: make it the course venv's.
export PATH := $(BIN):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help venv book serve lab test test-fast lint bench clean labs setup-cells grade sandbox-deps browser-deps data-deps postgres-deps screenshots

help:
	@echo "make serve  build the course website (executes every notebook) and serve it on http://localhost:$(PORT)"
	@echo "make book   build the course website into _build/html only"
	@echo "make test   run every test (ruff, unit, every notebook under nbval, the website in Chromium, grading)"
	@echo "make lab    open JupyterLab on the course"
	@echo "make labs   regenerate the student labs (labs/) from solutions/ with nbgrader"
	@echo "make bench  run the benchmarks (ratios against PyTorch built-ins)"
	@echo "make grade LAB=lab1-init [FROM=uploads/]  grade a lab for the class (sandboxed)"
	@echo "make clean  remove build outputs and caches (keeps .venv; 'make distclean' removes it)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found " + sys.version.split()[0] + "); run: make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,postgres]"
	@touch $(STAMP)

venv: $(STAMP)

# tools/build_book.py: warnings and cell errors fail the build; a change in courselib drops
# Jupyter Book's execution cache (which keys on code cells only) so every chapter re-runs.
book: $(STAMP)
	$(BIN)/python tools/build_book.py
	@echo
	@echo "The course website is in $(CURDIR)/_build/html (open _build/html/index.html)."
	@echo "Serve it with: make serve   (then visit http://localhost:$(PORT))"

serve: book
	@echo "Serving the course on http://localhost:$(PORT) (Ctrl-C stops it)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

# One torch thread per test worker: JOBS workers x 2 threads on 2 cores oversubscribe the
# CPU and OpenMP's spinning threads slow every notebook down several times over.
# --dist loadscope: a notebook's cells run in one kernel, in order; conftest.py makes the
# chapters' nbval runs and the website tests one scope (the build reuses nbval's executions).
test: $(STAMP) sandbox-deps browser-deps data-deps postgres-deps lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadscope

# ruff over the Python code and every notebook's code cells (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not pipeline and not notebook" --ignore=tests/test_labs.py

# System packages from Debian, installed when missing and we are root; otherwise say how.
# $(call apt_need,<check command>,<packages>,<what needs them>,<on failure: exit 1 or true>)
define apt_need
	@( $(1) ) >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing $(2) ($(3))"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; } \
				|| { echo "could not install $(2) (needed by $(3))"; $(4); }; \
		else echo "needed by $(3): sudo apt-get install $(2)"; $(4); fi; }
endef

# Grading runs every student kernel under bubblewrap (setpriv and prlimit come with util-linux).
sandbox-deps:
	$(call apt_need,command -v bwrap,bubblewrap,the grading sandbox,exit 1)

# The website tests (tests/test_site.py) drive Debian's Chromium headless through Playwright.
browser-deps:
	$(call apt_need,command -v chromium && command -v chromedriver,chromium chromium-driver,the website tests,exit 1)

# A PostgreSQL server for tests/test_postgres_gradebook.py (the test starts and stops its own).
postgres-deps:
	$(call apt_need,command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl,postgresql,the PostgreSQL gradebook test,exit 1)

# The full Fashion-MNIST (tests/test_data.py checks the shipped subset against it). Optional:
# without it that one test is skipped and says why.
data-deps:
	$(call apt_need,test -d /usr/share/datasets/fashion-mnist,dataset-fashion-mnist,the full-dataset test,true)

# Refresh the README's screenshots (docs/img/) from the site tests' browser.
screenshots: $(STAMP) browser-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests/test_site.py -k test_screenshots_of -p no:xdist
	cp _build/screenshots/*.png docs/img/

WORKERS ?=
grade: $(STAMP) sandbox-deps
	@test -n "$(LAB)" || { echo "usage: make grade LAB=lab1-init [FROM=folder/of/uploads] [WORKERS=n] [REGRADE=1]"; exit 1; }
	$(BIN)/python -m grading $(LAB) $(if $(FROM),--from $(FROM)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(REGRADE),--regrade)

labs: $(STAMP)
	$(BIN)/python tools/generate_labs.py

setup-cells: $(STAMP)
	$(BIN)/python tools/setup_cell.py --write

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
