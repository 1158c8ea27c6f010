# kafka-node: `make check` runs the seed's Maelstrom kafka test with our own runner (`make
# check-5b` the same on two nodes);
# `make test` runs the test suite; `make lint` runs ruff and mypy; `make bench` measures the
# performance table (a few minutes); `make mutation` runs mutmut over the node's modules (an
# hour or more, not in CI). All install what they need into .venv first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint check check-5b bench restarts soak mutation mutation-node mutation-migrations \
	mutation-storage mutation-protocol mutation-cluster mutation-results clean

# Dependencies once per change of pyproject.toml; the package itself (not editable, as a user
# gets it) on every run, so the console scripts always run the code in this tree.
$(BIN)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check ".[test,lint,plots]"
	touch $@

install: $(BIN)/.deps
	rm -rf build  # a stale build/lib would be copied into the wheel
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .

test: install
	$(BIN)/pytest

lint: $(BIN)/.deps
	$(BIN)/ruff check .
	$(BIN)/mypy

check: install
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 20 --rate 1000

# Challenge 5b: the same workload on two nodes.
check-5b: install
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 2 --concurrency 2n --time-limit 20 --rate 1000

bench: install
	$(BIN)/maelstrom-kafka-bench suite --readme README.md

# 60 s of the seed's workload with a SIGKILL and restart about every second, on one file.
restarts: install
	rm -rf store/restarts
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 60 \
		--rate 1000 --restart-every 1 --store store/restarts -- --db store/restarts/log.db

# Not in CI: 10 minutes with restarts and hostile input; reports anomalies and memory over time.
soak: install
	rm -rf store/soak
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 600 \
		--rate 1000 --restart-every 30 --hostile-every 0.05 --store store/soak -- --db store/soak/log.db

# Not in CI (hours on 2 cores): mutmut over node.py, storage.py, migrations.py, protocol.py and
# cluster.py, in five parts side by side, each in a fresh copy of the tree so the working tree is never
# left mutated (mutmut 2's record of earlier runs does not survive a change of the tests, so
# each run starts anew). `make mutation-results` lists the survivors. String mutations (log
# and error texts, SQL text) are left out.
MUTATION_DIR := store/mutation
MUTATION_PARTS := node migrations storage protocol cluster
MUTATION_node := kafka_node/node.py
MUTATION_migrations := kafka_node/migrations.py
MUTATION_storage := kafka_node/storage.py
MUTATION_protocol := kafka_node/protocol.py
MUTATION_cluster := kafka_node/cluster.py
# cluster.py is exercised by the cluster tests alone: run them first, not after the others.
MUTATION_RUNNER_cluster := python -m pytest -x -q -p no:cacheprovider --timeout 120 tests/test_cluster_node.py

mutation: install
	$(BIN)/pip install --quiet --disable-pip-version-check ".[mutation]"
	$(MAKE) --no-print-directory -j5 $(addprefix mutation-,$(MUTATION_PARTS))
	$(MAKE) --no-print-directory mutation-results

$(addprefix mutation-,$(MUTATION_PARTS)): mutation-%:
	rm -rf $(MUTATION_DIR)/$* && mkdir -p $(MUTATION_DIR)/$*
	git ls-files -z | xargs -0 cp --parents -t $(MUTATION_DIR)/$*
	ln -s ../migrations $(MUTATION_DIR)/$*/kafka_node/migration_files
	cd $(MUTATION_DIR)/$* && PATH="$(abspath $(BIN)):$$PATH" PYTHONPATH="$$PWD" \
		mutmut run --paths-to-mutate $(MUTATION_$*) --disable-mutation-types string \
		$(if $(MUTATION_RUNNER_$*),--runner "$(MUTATION_RUNNER_$*)") > mutmut.log 2>&1 || true

mutation-results:
	@for part in $(MUTATION_PARTS); do \
		(cd $(MUTATION_DIR)/$$part && PATH="$(abspath $(BIN)):$$PATH" mutmut results); done

clean:
	rm -rf $(VENV) build *.egg-info store .pytest_cache .hypothesis
