# kafka-node. The two commands of a fresh clone:
#   make check   the seed's Maelstrom kafka test, our runner against our node (about 40 s)
#   make test    the test suite (CI runs `make lint`, then this)
# Everything is installed into .venv from uv.lock, exactly, with its bytecode compiled (so that
# every child process starts without compiling its imports, even where PYTHONDONTWRITEBYTECODE
# is set); only Python 3.11+ and make are needed beforehand (uv itself is installed, at the
# version below, into .uv/).
#
# Others: `make check-5b` (the same workload on two nodes), `make lint` (ruff, mypy),
# `make bench` (the performance table in docs/performance.md, a few minutes), `make restarts`
# and `make soak` (long runs with SIGKILLs), `make sim` (the replication simulator's soak),
# `make sim-switches`, `make replication-runs`, `make partitions` (3 and 5 nodes under Maelstrom's
# partition nemesis), `make faults` (the fault matrix: 3 and 5 nodes, calm and five faults, two
# latency distributions, two seeds, in one table; about 30 minutes) and `make faults-quick` (its CI
# size, a few minutes), `make mutation` (hours, not in CI), `make lock`
# (refresh uv.lock to the newest releases), `make test-latest` (the suite against the newest
# releases, in .venv-latest, without touching the lock).

SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
LATEST_VENV := .venv-latest

# uv installs into $(VENV), with this machine's Python, and never downloads one of its own.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
UV_SYNC := $(UV) sync --quiet --locked --no-editable --compile-bytecode --python $(PYTHON)

.PHONY: install install-runtime test lint check check-5b bench restarts partitions faults faults-quick soak sim \
	sim-switches replication-runs \
	lock test-latest system-packages \
	mutation mutation-venv mutation-results clean

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# What `make check` needs: the package, its dependencies and the plotting library, nothing
# more (--inexact: tools installed earlier for the tests are left in place).
install-runtime: $(UV)
	rm -rf build  # setuptools copies a stale build/lib into the wheel, deleted modules too
	$(UV_SYNC) --inexact --no-default-groups --extra plots

# The working tree's environment: the above, the test tools and the linters, exactly as locked.
install: $(UV)
	rm -rf build
	$(UV_SYNC) --extra plots --group test --group lint

# Two workers (pytest-xdist), a test file each at a time: the suite mostly waits on child
# processes, so two overlap well on 2 cores; a file's module-wide runs stay on one worker.
PYTEST_WORKERS ?= 2
test: install system-packages
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

check: install-runtime
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 20 --rate 1000

# Challenge 5b: the same workload on two nodes.
check-5b: install-runtime
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 2 --concurrency 2n --time-limit 20 --rate 1000

# The tests open logs in Debian's sqlite3 shell, inject failed syncs with libfiu's fiu-run, and
# look at the runner's web page in headless chromium.
SYSTEM_PACKAGES := sqlite3:sqlite3 fiu-run:fiu-utils chromium:chromium
system-packages:
	@missing=(); for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null || missing+=($${pair#*:}); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages the tests use: $${missing[*]}"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${missing[@]}" >/dev/null; \
		else \
			echo "the tests need these Debian packages: $${missing[*]} (apt-get install $${missing[*]})" >&2; exit 1; \
		fi; \
	fi

bench: install
	$(BIN)/maelstrom-kafka-bench suite --doc docs/performance.md

# 60 s of the seed's workload with a SIGKILL and restart about every second, on one file.
restarts: install-runtime
	rm -rf store/restarts
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 60 \
		--rate 1000 --restart-every 1 --store store/restarts -- --db log.db

# The seed's workload on 3 and then 5 of our nodes, each on its own file, first on a calm
# network (the baseline), then while Maelstrom's partition nemesis cuts it about every 2 s
# (the figures of docs/partitions.md; about 2.5 minutes). Every run is done even if one fails.
partitions: install-runtime
	status=0; for n in 3 5; do for nemesis in calm partition; do \
		store=store/partitions-$$n-$$nemesis; rm -rf $$store; \
		$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count $$n --concurrency 2n --time-limit 20 \
			--rate 1000 $$([ $$nemesis = calm ] || echo --nemesis partition --nemesis-interval 2 --availability 0.9) \
			--store $$store -- --db '{node_id}.db' || status=$$?; done; done; exit $$status

# The fault matrix on our node, each node on its own file: 3 and 5 nodes, by constant and
# exponential 5 ms latency, by calm, partition, kill, pause, kill with disk loss and all of them,
# by seeds 1 and 2, in one table (store/faults/matrix/latest/matrix.md; each run kept in
# store/faults/kafka/). faults-quick: 3 nodes, seed 1, shorter runs (a CI job of a few minutes).
faults: install-runtime
	$(BIN)/maelstrom-kafka-test matrix --bin $(BIN)/maelstrom-kafka --store store/faults -- --db '{node_id}.db'

faults-quick: install-runtime
	$(BIN)/maelstrom-kafka-test matrix --bin $(BIN)/maelstrom-kafka --store store/faults --quick -- --db '{node_id}.db'

# The replication simulator's soak (CI runs a few hundred seeds): SEEDS seeds with faults, then
# SEEDS/10 calm ones, on both cores. A failing seed prints how to replay it.
SEEDS ?= 100000
sim: install
	PYTHONPATH=tests $(BIN)/python -m support.sim.run --seeds 0:$(SEEDS) --jobs 2
	PYTHONPATH=tests $(BIN)/python -m support.sim.run --seeds 0:$$(( $(SEEDS) / 10 )) --calm --jobs 2

# Each fix of replication switched off in turn: the seeds the simulator takes to find it.
sim-switches: install
	PYTHONPATH=tests $(BIN)/python -m support.sim.switches

# Whole runs of our replicated nodes for docs/replication.md's table (about 40 minutes): the seed's
# workload on 2, 3 and 5 nodes, calm (every client's first final poll at the same instant) over
# 10 seeds, then combined faults (kills with disk loss, pauses, partitions, 5 ms latency) over 3, each beside
# a calm run of the same latency and rate.
replication-runs: install-runtime
	rm -rf store/replication-runs
	status=0; for n in 2 3 5; do for seed in 1 2 3 4 5 6 7 8 9 10; do \
		$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count $$n --concurrency 2n --time-limit 20 \
			--rate 1000 --final-polls-together --seed $$seed --store store/replication-runs/calm-$$n-$$seed \
			-- --db '{node_id}.db' > /dev/null || status=$$?; done; done; \
	for n in 3 5; do for seed in 1 2 3; do for faults in calm faults; do \
		$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count $$n --concurrency 2n --time-limit 20 \
			--rate 500 --latency 5 --seed $$seed $$([ $$faults = calm ] || echo --nemesis kill,pause,partition \
			--nemesis-targets one --lose-disk --nemesis-interval 3) \
			--store store/replication-runs/$$faults-5ms-$$n-$$seed -- --db '{node_id}.db' > /dev/null || status=$$?; \
		done; done; done; \
	PYTHONPATH=tests $(BIN)/python -m support.replication_table store/replication-runs || status=$$?; exit $$status

# Not in CI: 10 minutes with restarts and hostile input; reports anomalies and memory over time.
soak: install-runtime
	rm -rf store/soak
	$(BIN)/maelstrom-kafka-test --bin $(BIN)/maelstrom-kafka --node-count 1 --concurrency 2n --time-limit 600 \
		--rate 1000 --restart-every 30 --hostile-every 0.05 --store store/soak -- --db log.db

# uv.lock again from the newest releases that pyproject.toml's ranges allow.
lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

# The suite against the newest releases, in a venv of its own, leaving uv.lock and .venv as
# they are: a new release that breaks something is seen here before it reaches main. Prints
# what differs from the lock first.
test-latest: install system-packages
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install --quiet --python $(LATEST_VENV)/bin/python --upgrade ".[plots]" --group test
	@echo "newest releases that differ from uv.lock (locked -> newest):"
	@join -a2 -e none -o 0,1.2,2.2 <($(call FROZEN,$(VENV))) <($(call FROZEN,$(LATEST_VENV))) \
		| awk '$$2 != $$3 {print "  " $$1 " " $$2 " -> " $$3; n++} END {if (!n) print "  none"}'
	$(LATEST_VENV)/bin/pytest

# "name version" of every package installed in a venv, sorted by name.
FROZEN = $(UV) pip freeze --quiet --python $(1)/bin/python | grep '==' | tr '=' ' ' \
	| awk '{print tolower($$1), $$2}' | sort

# Not in CI (hours on 2 cores): mutmut over the node's modules, in parts side by side, each in
# a fresh copy of the tree so the working tree is never left mutated (mutmut 2's record of
# earlier runs does not survive a change of the tests, so each run starts anew).
# `make mutation-results` lists the survivors. String mutations (log and error texts, SQL
# text) are left out.
MUTATION_DIR := store/mutation
MUTATION_PARTS := core loop storage decoding cluster
.PHONY: $(addprefix mutation-,$(MUTATION_PARTS)) $(addprefix mutation-resume-,$(MUTATION_PARTS))
MUTATION_core := kafka_node/node.py,kafka_node/batch.py,kafka_node/rpcs.py,kafka_node/errors.py,kafka_node/unsynced.py
MUTATION_loop := kafka_node/serve.py,kafka_node/outbox.py
MUTATION_storage := kafka_node/storage/,kafka_node/migrations.py
MUTATION_decoding := kafka_node/decoding.py,kafka_node/protocol.py,kafka_node/framing.py
MUTATION_cluster := kafka_node/cluster.py
# Each part runs the tests that reach its modules, quickest and most telling first: the core's
# own tests in this process (a mutant they kill costs about a second), then the real serve
# loop in this process, then the console script in a child; -x stops at the first failure.
# A surviving mutant runs the whole selection, so each is kept to what reaches its part.
MUTATION_PYTEST := python -m pytest -x -q -p no:cacheprovider -p no:xdist --timeout 60
MUTATION_RUNNER_core := $(MUTATION_PYTEST) tests/node/test_core.py tests/node/test_unsynced.py tests/storage/test_reply_waits.py \
	tests/storage/test_faults.py tests/storage/test_lock_held_elsewhere.py tests/node/test_rpcs.py tests/node/test_bad_input.py
MUTATION_RUNNER_loop := $(MUTATION_PYTEST) tests/storage/test_reply_waits.py tests/storage/test_faults.py tests/node/test_rpcs.py \
	tests/node/test_operations.py tests/storage/test_power_cut.py tests/storage/test_fault_injection.py \
	tests/storage/test_checkpoints.py tests/node/test_idle.py tests/node/test_memory_bounds.py tests/storage/test_migrations.py \
	tests/cluster/test_cluster.py -k 'not pass_the_workload'
MUTATION_RUNNER_storage := $(MUTATION_PYTEST) tests/node/test_core.py tests/storage tests/node/test_rpcs.py tests/node/test_operations.py \
	tests/node/test_idle.py
MUTATION_RUNNER_decoding := $(MUTATION_PYTEST) tests/node/test_framing.py tests/node/test_core.py tests/node/test_bad_input.py tests/node/test_rpcs.py \
	tests/node/test_properties.py tests/node/test_memory_bounds.py
MUTATION_RUNNER_cluster := $(MUTATION_PYTEST) tests/node/test_core.py tests/cluster -k 'not pass_the_workload and not partitions'

# Its own venv, so that `make test` (which syncs .venv exactly) can run meanwhile.
MUTATION_VENV := .venv-mutation
MUTATION_BIN := $(MUTATION_VENV)/bin

mutation: $(UV)
	$(MAKE) --no-print-directory mutation-venv
	$(MAKE) --no-print-directory -j2 $(addprefix mutation-,$(MUTATION_PARTS))
	$(MAKE) --no-print-directory mutation-results

mutation-venv: $(UV)
	rm -rf build
	UV_PROJECT_ENVIRONMENT=$(MUTATION_VENV) $(UV_SYNC) --extra plots --group test --group mutation

# mutmut in part $(1)'s copy; mutmut 2 goes on from its record of the mutants already judged.
MUTMUT_RUN = cd $(MUTATION_DIR)/$(1) && PATH="$(abspath $(MUTATION_BIN)):$$PATH" PYTHONPATH="$$PWD" \
	mutmut run --paths-to-mutate $(MUTATION_$(1)) --disable-mutation-types string,fstring \
	--runner "$(MUTATION_RUNNER_$(1))" >> mutmut.log 2>&1 || true

$(addprefix mutation-,$(MUTATION_PARTS)): mutation-%:
	rm -rf $(MUTATION_DIR)/$* && mkdir -p $(MUTATION_DIR)/$*
	git ls-files -z | xargs -0 cp --parents -t $(MUTATION_DIR)/$*
	ln -s ../migrations $(MUTATION_DIR)/$*/kafka_node/migration_files
	$(call MUTMUT_RUN,$*)

# `make mutation-resume-core` (or another part) goes on in the part's copy after mutmut 2
# stopped ("Attribute Mutant.line is required", or a kill), first putting back a module it
# left mutated.
$(addprefix mutation-resume-,$(MUTATION_PARTS)): mutation-resume-%:
	find $(MUTATION_DIR)/$* -name '*.py.bak' -exec sh -c 'mv "$$1" "$${1%.bak}"' _ {} \;
	$(call MUTMUT_RUN,$*)

mutation-results:
	@for part in $(MUTATION_PARTS); do \
		(cd $(MUTATION_DIR)/$$part && PATH="$(abspath $(MUTATION_BIN)):$$PATH" mutmut results); done

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(MUTATION_VENV) $(UV_HOME) build *.egg-info store .pytest_cache .hypothesis
