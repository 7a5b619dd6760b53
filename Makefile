# Two commands, each doing its own set-up on a fresh machine (Python 3.11+ and make):
#   make demo   install, then run the default scenario with chaos and print its report
#   make test   install, then run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "syncbed needs Python 3.11 or newer; set PYTHON=python3.11 (or newer) and run make again")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncbed run --chaos default

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/syncbed bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .syncbed *.egg-info

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow
