# Thin wrappers; the logic lives in pyproject.toml, _config.yml and tests/. The rules the
# student edition shares (venv, book, serve, lab, lint, clean) are in course.mk.
EXTRAS := test,postgres
include course.mk
.DEFAULT_GOAL := help

.PHONY: help test test-fast bench labs setup-cells grade publish sandbox-deps browser-deps postgres-deps screenshots

help:
	@echo "make serve  build the course website (executes every notebook) and serve it on http://localhost:$(PORT)"
	@echo "make book   build the course website into _build/html only"
	@echo "make pdf    the whole course as one PDF (_build/html/course.pdf, linked from every page; needs Chromium)"
	@echo "make test   run every test (ruff, unit, every notebook under nbval, the website in Chromium, grading)"
	@echo "make lab    open JupyterLab on the course"
	@echo "make labs   regenerate the student labs (labs/) from solutions/ with nbgrader"
	@echo "make bench  run the benchmarks (ratios against PyTorch built-ins)"
	@echo "make grade LAB=lab1-init [FROM=uploads/]  grade a lab for the class (sandboxed)"
	@echo "make publish DEST=<folder>  write the public student edition (released labs, no answers) as a git commit in DEST"
	@echo "make clean  remove build outputs and caches (keeps .venv; 'make distclean' removes it)"

# One torch thread per test worker: JOBS workers x 2 threads on 2 cores oversubscribe the
# CPU and OpenMP's spinning threads slow every notebook down several times over.
# --dist loadscope: a notebook's cells run in one kernel, in order; conftest.py makes the
# chapters' nbval runs and the website tests one scope (the build reuses nbval's executions).
test: $(STAMP) sandbox-deps browser-deps data-deps postgres-deps lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadscope

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not pipeline and not notebook" --ignore=tests/test_labs.py

# Grading runs every student kernel under bubblewrap (setpriv and prlimit come with util-linux).
sandbox-deps:
	$(call apt_need,command -v bwrap,bubblewrap,the grading sandbox,exit 1)

# The website tests (tests/test_site.py) drive Debian's Chromium headless through Playwright.
browser-deps:
	$(call apt_need,command -v chromium && command -v chromedriver,chromium chromium-driver,the website tests,exit 1)

# A PostgreSQL server for tests/test_postgres_gradebook.py (the test starts and stops its own).
postgres-deps:
	$(call apt_need,command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl,postgresql,the PostgreSQL gradebook test,exit 1)

# Refresh the README's screenshots (docs/img/) from the site tests' browser.
screenshots: $(STAMP) browser-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests/test_site.py -k test_screenshots_of -p no:xdist
	cp _build/screenshots/*.png docs/img/

WORKERS ?=
grade: $(STAMP) sandbox-deps
	@test -n "$(LAB)" || { echo "usage: make grade LAB=lab1-init [FROM=folder/of/uploads] [WORKERS=n] [REGRADE=1]"; exit 1; }
	$(BIN)/python -m grading $(LAB) $(if $(FROM),--from $(FROM)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(REGRADE),--regrade)

labs: $(STAMP)
	$(BIN)/python -m tools.generate_labs

# The student edition: a git repository at DEST, without solutions or hidden tests (docs/publishing.md).
publish: $(STAMP)
	@test -n "$(DEST)" || { echo "usage: make publish DEST=<folder>   (the student edition's git repository; created if missing)"; exit 1; }
	$(BIN)/python -m tools.publish $(DEST)

setup-cells: $(STAMP)
	$(BIN)/python -m tools.setup_cell --write

bench: $(STAMP)
	$(BIN)/python -m benchmarks

