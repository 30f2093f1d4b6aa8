# kvmlab: `make lab` opens the labs, `make test` runs every test. Both set up what they
# need first (system packages, /dev/kvm, libvirt daemons, virtualenv, guest kernel),
# and both can be run again at any time.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kvmlab-installed
# The CPU model's compiled modules (kvmlab/cpu/native.py): compiled again when one changes.
NATIVE := $(VENV)/.kvmlab-native
NATIVE_SOURCES := $(shell command -v $(PYTHON) >/dev/null && $(PYTHON) kvmlab/cpu/native.py)

.PHONY: lab test setup host venv guest doctor cleanup dist

lab: setup
	bash scripts/lab.sh

# The model tests beside the host tests, then the tests that measure alone: scripts/test.sh.
test: setup
	$(BIN)/ruff check .
	BIN=$(BIN) bash scripts/test.sh

setup: host venv guest

host:
	bash scripts/setup-host.sh

venv: $(STAMP) $(NATIVE)

$(STAMP): pyproject.toml setup.py | host
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[live,dev]'
	touch $@ $(NATIVE)

$(NATIVE): $(NATIVE_SOURCES) | $(STAMP)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

guest: host venv
	$(BIN)/kvmlab guest build

doctor: setup
	$(BIN)/kvmlab doctor

cleanup: venv
	$(BIN)/kvmlab doctor --cleanup

# The sdist and the wheel a pip user installs (scenarios, recordings and notebooks inside).
dist: venv
	$(BIN)/python -m build --outdir dist
