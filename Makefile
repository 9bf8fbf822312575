# dlbook: two commands for a new reader (see README.md).
#   make book   install (once), execute every chapter, build the HTML into _build/html
#   make test   install (once), then unit tests, every notebook, and browser tests of the HTML
#   make lab    JupyterLab on chapters/
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dlbook-installed
MATHJAX_VERSION := 3.2.2
MATHJAX := _static/mathjax/tex-svg-full.js
# Notebooks run with strict exercise checks; the book build only needs the static explorers.
export DLBOOK_STRICT_CHECKS := 1
# One torch/OpenMP thread per process: the tests run two notebooks at once on two cores, and
# oversubscribed threads made tiny training loops 10-20x slower. Models here are small.
export OMP_NUM_THREADS := 1
# (MPLBACKEND stays unset: kernels then use the inline backend, so figures reach the page.)

.PHONY: help install chromium book test test-unit test-notebooks test-browser lab bench clean

help:
	@echo "make book   build the HTML book into _build/html (installs what it needs)"
	@echo "make test   run every test: unit, notebooks, browser (installs what it needs)"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make bench  print the benchmark tables"

install: $(STAMP) $(MATHJAX) chromium

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dlbook)" >/dev/null
	# Colab's ipywidgets 7.7, beside the pinned 8.x: tests/test_widgets_compat.py runs the live mode on it
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/ipywidgets7 ipywidgets==7.7.5 ipython_genutils==0.2.0
	@touch $@

# MathJax is served from the built site (no CDN): the SVG build is one self-contained file,
# taken from the npm registry (Debian's npm is installed first on a machine without one).
$(MATHJAX):
	@mkdir -p $(@D) .cache
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq npm >/dev/null; }
	cd .cache && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null
	tar -xzf .cache/mathjax-$(MATHJAX_VERSION).tgz -C .cache package/es5/tex-svg-full.js
	cp .cache/package/es5/tex-svg-full.js $@

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

book: install
	DLBOOK_EXPLORER_MODE=static $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo; echo "Open file://$(CURDIR)/_build/html/index.html"

test-unit: install
	$(BIN)/python -m pytest -n 2 tests -m "not browser"

test-notebooks: install
	$(BIN)/python -m pytest -n 2 --nbmake chapters

test-browser: book
	$(BIN)/python -m pytest tests -m browser

test: install
	$(MAKE) test-unit
	$(MAKE) test-notebooks
	$(MAKE) test-browser

lab: install
	$(BIN)/jupyter lab chapters/

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf _build .cache .pytest_cache
