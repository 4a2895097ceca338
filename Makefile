# One entry point. `make test` and `make book` each do the whole set-up on a fresh clone.
#   make test                      set up, then run the unit tests
#   make smoke                     execute every chapter under its smoke profile (the paper path, toy sizes)
#   make book [PROFILE=paper]      set up, fetch missing data, execute every chapter, render HTML
#   make data                      fetch, rebuild and verify what no data root holds
#   make check-book                full-page screenshots and checks of the built pages (Chromium)
#   make chapter CHAPTER=00_data   execute one chapter (no HTML)
#   make lint                      ruff on src, tools, tests, bench and the notebooks' code cells
#   make lock                      regenerate requirements.lock from pyproject.toml's pins
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= ci
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
# Data roots: BACKDOORBOOK_DATA if the caller set it, else the mirror beside the checkout if
# there is one, else the fetch cache (filled from the pinned upstreams by `make data`).
BACKDOORBOOK_DATA ?= $(or $(wildcard $(abspath ../shared/data)),$(HOME)/.cache/backdoorbook/data)
export BACKDOORBOOK_DATA

.PHONY: setup wordnet lint test smoke data book check-book chapter browser mathjax lock clean

# Everything the tests and the book need, so that no test is skipped on a fresh machine:
# the pinned Python tree, WordNet, Chromium (browser tests) and MathJax (the offline book).
setup: $(STAMP) wordnet browser mathjax

# WordNet 3.0 from Debian (CleanCLIP's EDA synonyms); nothing is downloaded at run time.
wordnet:
	@test -f /usr/share/wordnet/data.noun -a -f /usr/share/wordnet/index.sense || \
	  { apt-get update -qq && apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null; }

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

lint: setup
	$(VENV)/bin/ruff check src tools tests bench
	$(VENV)/bin/ruff format --check src tools tests bench
	$(PY) tools/lint_notebooks.py

test: setup
	$(PY) -m pytest -q -m "not smoke"

smoke: data
	$(PY) -m pytest -q -m smoke

data: setup
	$(PY) -m backdoorbook.data ensure

book: data
	$(PY) tools/build_book.py --profile $(PROFILE)

check-book: setup
	$(PY) tools/check_book.py

chapter: data
	@test -n "$(CHAPTER)" || { echo "usage: make chapter CHAPTER=<stem> [PROFILE=ci|paper]"; exit 2; }
	$(PY) tools/build_book.py --profile $(PROFILE) --chapters $(CHAPTER)

# Debian's Chromium, for tools/check_book.py and its tests.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# MathJax for the HTML book, from the npm registry (version and sha512 pinned in
# tools/build_book.py), into .cache/mathjax/; every render copies it into the book's static files.
MATHJAX_VERSION := $(shell sed -n 's/^MATHJAX_VERSION = "\(.*\)"$$/\1/p' tools/build_book.py)
MATHJAX := .cache/mathjax/$(MATHJAX_VERSION)/es5/tex-mml-chtml.js
mathjax: $(MATHJAX)
$(MATHJAX): | $(STAMP)
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
	$(PY) tools/build_book.py --install-mathjax

lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[test]'
	{ sed -n '1,2p' requirements.lock; .lockenv/bin/pip freeze --exclude-editable | grep -v '^backdoorbook'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lockenv

clean:
	rm -rf book/_build book/generated results .pytest_cache
