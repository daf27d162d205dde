# The two fresh-machine commands README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint bench browser

$(BIN)/taskroom: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/taskroom

demo: install
	$(BIN)/taskroom up --demo

test: lint browser
	$(BIN)/pytest -q

# Studio tests drive Debian's Chromium (test tools cannot download their own browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the Studio tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/room_rtt.py
