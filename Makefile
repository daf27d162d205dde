# The two fresh-machine commands README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint typecheck bench browser services

$(BIN)/taskroom: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,cluster]'
	@touch $@

install: $(BIN)/taskroom

demo: install
	$(BIN)/taskroom up --demo

test: lint browser services
	$(BIN)/pytest -q

# Studio tests drive Debian's Chromium (test tools cannot download their own browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the Studio tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The store and cluster tests start their own PostgreSQL and Redis from Debian's packages
# (PostgreSQL's binaries live in /usr/lib/postgresql/<version>/bin, off PATH).
services:
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1 || { \
		echo "installing postgresql and redis-server for the store and cluster tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql redis-server >/dev/null; }

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy sees the folders under their import names through a tree of links (setuptools maps them).
TYPECHECK_TREE := build/typecheck/taskroom
typecheck: install
	@mkdir -p $(TYPECHECK_TREE) && touch $(TYPECHECK_TREE)/__init__.py
	@for d in host agents toolkits invoke; do ln -sfn ../../../$$d $(TYPECHECK_TREE)/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy -p taskroom

bench: install
	$(BIN)/python bench/room_rtt.py
