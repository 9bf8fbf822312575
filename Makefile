# dlbook: two commands for a new reader (see README.md).
#   make book   install (once), execute the notebooks whose outputs are stale, build the HTML
#   make test   install (once), then unit tests, every notebook once, the HTML from those
#               executions, and browser tests of the HTML; prints a table per phase
# For authors: make chapter CHAPTER=losses (that chapter's tests, notebooks and pages),
#   make seeds [CHAPTER=...] (every notebook under DLBOOK_SEED=1,2,3), make colab-check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dlbook-installed
MATHJAX_VERSION := 3.2.2
MATHJAX := _static/mathjax/tex-svg-full.js
CHAPTER ?=
SEEDS   ?= 1,2,3
COLAB_VENV := _build/colab-venv
# Notebooks run with strict exercise checks; the book build only needs the static explorers.
export DLBOOK_STRICT_CHECKS := 1
# One torch/OpenMP thread per process: the tests run two notebooks at once on two cores, and
# oversubscribed threads made tiny training loops 10-20x slower. Models here are small.
export OMP_NUM_THREADS := 1
# (MPLBACKEND stays unset: kernels then use the inline backend, so figures reach the page.)
NB_CHAPTER := $(if $(CHAPTER),--nb-chapter=$(CHAPTER))

.PHONY: help install install-book chromium book html labs grade test test-unit test-notebooks test-browser chapter seeds colab-check lab bench clean

help:
	@echo "make book   build the HTML book into _build/html (installs what it needs)"
	@echo "make test   run every test: unit, notebooks, browser (installs what it needs)"
	@echo "make chapter CHAPTER=<name>  one chapter: its unit tests, notebooks and pages (author loop)"
	@echo "make seeds [CHAPTER=<name>]  every notebook under DLBOOK_SEED=$(SEEDS), as a table"
	@echo "make colab-check [CHAPTER=<name>]  every notebook in a Colab-like environment"
	@echo "make labs [CHAPTER=<name>]   student notebooks + otter-grader autograders in _build/labs"
	@echo "make grade LAB=<chapter>/<notebook> SUBMISSIONS=<dir>  grades.csv + feedback per student"
	@echo "make book EDITION=student    the HTML book with every solution hidden (_build/student)"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make bench  print the benchmark tables"

# What the book needs (the venv and MathJax); the tests also need Chromium.
install-book: $(STAMP) $(MATHJAX)

install: install-book chromium

$(STAMP): requirements.txt pyproject.toml
	@start=$$(date +%s.%N); \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	$(BIN)/python -m pip install --quiet --upgrade pip; \
	$(BIN)/python -m pip install --quiet -r requirements.txt; \
	$(BIN)/python -m pip install --quiet --no-deps -e .; \
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dlbook)" >/dev/null; \
	: "Colab's ipywidgets 7.7, beside the pinned 8.x: tests/test_widgets_compat.py runs the live mode on it"; \
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/ipywidgets7 ipywidgets==7.7.5 ipython_genutils==0.2.0; \
	mkdir -p _build; \
	awk -v s="$$start" -v e="$$(date +%s.%N)" 'BEGIN { printf "install\t%.1f\tok\n", e - s }' > _build/install-phase.tsv
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

# The HTML: first every notebook whose cached outputs are missing or stale (its code, or src/dlbook,
# changed) is executed, two at a time, by the book's runner into Jupyter Book's cache; then
# Jupyter Book renders every page from that cache and executes nothing itself.
EDITION ?=
ifeq ($(EDITION),student)
book: install-book html-student
	@echo; echo "Open file://$(CURDIR)/_build/student/_build/html/index.html (the student edition: solutions hidden)"
else
book: install-book html
	@echo; echo "Open file://$(CURDIR)/_build/html/index.html (search works when served: $(BIN)/python -m http.server -d _build/html)"
endif

# The student edition: the same pages from the same cache, with sphinx-exercise hiding solutions.
html-student:
	@mkdir -p _build/student
	DLBOOK_PHASE=book $(BIN)/python tools/notebooks.py fill --jobs 2
	$(BIN)/python tools/notebooks.py config --output _build/student/_config.yml --hide-solutions
	DLBOOK_EXPLORER_MODE=static $(BIN)/jupyter-book build . --config _build/student/_config.yml --path-output _build/student --warningiserror --nitpick --keep-going

html:
	@mkdir -p _build
	DLBOOK_PHASE=book $(BIN)/python tools/notebooks.py fill --jobs 2
	DLBOOK_EXPLORER_MODE=static $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going 2>&1 | tee _build/jb-build.log

test-unit: install
	$(BIN)/python -m pytest -n 2 tests -m "not browser and not notebook"

# Each notebook once (DLBOOK_SEED=0), both cores; successful outputs go to the HTML build's cache.
test-notebooks: install
	DLBOOK_PHASE=notebooks $(BIN)/python -m pytest -n 2 tests/test_notebooks.py $(NB_CHAPTER)

test-browser: book
	$(BIN)/python -m pytest -n 2 tests -m browser

# Every phase runs even when an earlier one fails (a second failure is not hidden); the browser
# tests need the HTML. The table per phase and the book's size are printed at the end.
test: install
	@rm -f _build/phases.tsv _build/executions.tsv _build/jb-build.log; status=0; \
	tools/timed unit $(BIN)/python -m pytest -n 2 tests -m "not browser and not notebook" || status=1; \
	DLBOOK_PHASE=notebooks tools/timed notebooks $(BIN)/python -m pytest -n 2 tests/test_notebooks.py || status=1; \
	tools/timed "HTML build" $(MAKE) --no-print-directory html || status=1; \
	if [ -f _build/html/index.html ]; then tools/timed browser $(BIN)/python -m pytest -n 2 tests -m browser || status=1; fi; \
	$(BIN)/python tools/report.py; rm -f _build/install-phase.tsv; exit $$status

# The author's loop: one chapter's unit tests (the tests of the dlbook modules its notebooks
# import, and the book's hygiene), its notebooks (into the shared cache) and its pages alone.
chapter: install
	@test -n "$(CHAPTER)" || { echo "usage: make chapter CHAPTER=<folder under chapters/>"; exit 2; }
	@mods=$$($(BIN)/python tools/notebooks.py list --chapter $(CHAPTER) --modules); \
	tests=$$(for m in $$mods; do if [ -f tests/test_$$m.py ]; then echo -n "tests/test_$$m.py "; fi; done); \
	echo "unit tests: tests/test_book.py $$tests"; \
	DLBOOK_PHASE=chapter $(BIN)/python -m pytest -n 2 -q -m "not browser" tests/test_book.py $$tests tests/test_notebooks.py --nb-chapter=$(CHAPTER)
	$(BIN)/python tools/notebooks.py toc --chapter $(CHAPTER) --output _build/chapter/$(CHAPTER)/_toc.yml --config-output _build/chapter/$(CHAPTER)/_config.yml
	DLBOOK_EXPLORER_MODE=static $(BIN)/jupyter-book build . --toc _build/chapter/$(CHAPTER)/_toc.yml --config _build/chapter/$(CHAPTER)/_config.yml --path-output _build/chapter/$(CHAPTER) --keep-going
	@echo; echo "Open file://$(CURDIR)/_build/chapter/$(CHAPTER)/_build/html/index.html"

# Claims that hold for other seeds: every notebook (or CHAPTER's) under DLBOOK_SEED=1,2,3 on both
# cores; a table notebook x seed -> seconds or the failing cell and error. Not part of make test.
seeds: install
	DLBOOK_PHASE=seeds $(BIN)/python -m pytest -n 2 -q tests/test_notebooks.py --nb-seeds=$(SEEDS) $(NB_CHAPTER)

# Every notebook as on Colab: a fresh venv with Colab's preinstalled stack (tools/colab_venv.sh),
# dlbook installed by the notebook's own first cell (from this checkout instead of GitHub): the
# first notebook alone installs it (its budget covers the install), then all run, two at a time.
colab-check: install
	tools/colab_venv.sh $(COLAB_VENV) $(VENV)
	DLBOOK_PHASE=colab $(BIN)/python -m pytest -q tests/test_notebooks.py --nb-kernel=colab-like --nb-install-from="file://$(CURDIR)" --nb-chapter=how-to-use --nb-timeout=900
	DLBOOK_PHASE=colab $(BIN)/python -m pytest -n 2 -q tests/test_notebooks.py --nb-kernel=colab-like --nb-install-from="file://$(CURDIR)" $(NB_CHAPTER)
	tools/colab_venv.sh --verify $(COLAB_VENV)

# Labs for instructors (tools/labs.py, otter-grader): from each notebook's exercises, a student
# notebook (solutions removed, dlbook's checks kept) and an autograder with hidden tests.
labs: install-book
	$(BIN)/python tools/labs.py make $(if $(CHAPTER),--chapter $(CHAPTER)) --out _build/labs

LAB ?=
SUBMISSIONS ?=
grade: install-book
	@test -n "$(LAB)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade LAB=<chapter>/<notebook> SUBMISSIONS=<folder of .ipynb>"; exit 2; }
	@test -d _build/labs/$(LAB) || $(MAKE) --no-print-directory labs CHAPTER=$(firstword $(subst /, ,$(LAB)))
	$(BIN)/python tools/labs.py grade --lab _build/labs/$(LAB) --submissions $(SUBMISSIONS) --out _build/graded/$(LAB)

lab: install
	$(BIN)/jupyter lab chapters/

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf _build .cache .pytest_cache
