# kafka-node: `make check` runs the seed's Maelstrom kafka test with our own runner;
# `make test` runs the test suite; `make bench` measures the performance table (a few
# minutes). All install what they need into .venv first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test check bench clean

# Dependencies once per change of pyproject.toml; the package itself (not editable, as a user
# gets it) on every run, so the console scripts always run the code in this tree.
$(BIN)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check ".[test,plots]"
	touch $@

install: $(BIN)/.deps
	rm -rf build  # a stale build/lib would be copied into the wheel
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .

test: install
	$(BIN)/pytest

check: install
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 20 --rate 1000

bench: install
	$(BIN)/maelstrom-kafka-bench suite

clean:
	rm -rf $(VENV) build *.egg-info store .pytest_cache .hypothesis
