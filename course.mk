# The make rules the instructor repository and the student edition share (both Makefiles
# include this file after setting EXTRAS, the pyproject extras their venv installs).
# Needs Python 3.11+ as $(PYTHON) (default: python3) and make. Everything else installs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
JOBS   ?= 2
EXTRAS ?= test
# Kernels started by Jupyter resolve "python" through PATH: make it the course venv's.
export PATH := $(BIN):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: venv book pdf serve lab lint clean distclean data-deps

$(STAMP): pyproject.toml course.mk
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found " + sys.version.split()[0] + "); run: make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@# every kernel of the venv loads the course's IPython extension (src/courselib_ipython: hints on NameError)
	@mkdir -p $(VENV)/etc/ipython
	@echo 'c.InteractiveShellApp.extensions = ["courselib_ipython"]' > $(VENV)/etc/ipython/ipython_kernel_config.py
	@touch $(STAMP)

venv: $(STAMP)

# tools/build_book.py: warnings and cell errors fail the build; a change in courselib drops
# Jupyter Book's execution cache (which keys on the code cells, source and metadata, only) so every chapter re-runs.
book: $(STAMP)
	$(BIN)/python -m tools.build_book
	@echo
	@echo "The course website is in $(CURDIR)/_build/html (open _build/html/index.html)."
	@echo "Serve it with: make serve   (then visit http://localhost:$(PORT))"

# The whole course as one PDF in the website (_build/html/course.pdf; tools/build_pdf.py), printed
# by headless Chromium from Jupyter Book's single-page build; every page then links to it.
pdf: $(STAMP)
	$(call apt_need,command -v chromium,chromium,make pdf,exit 1)
	$(BIN)/python -m tools.build_pdf

serve: book
	@echo "Serving the course on http://localhost:$(PORT) (Ctrl-C stops it)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

# ruff over the Python code and every notebook's code cells (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

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

# The full Fashion-MNIST (tests/test_data.py checks the shipped subset against it). Optional:
# without it that one test is skipped and says why.
data-deps:
	$(call apt_need,test -d /usr/share/datasets/fashion-mnist,dataset-fashion-mnist,the full-dataset test,true)

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
