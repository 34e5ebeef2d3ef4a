# Everything a developer or CI needs, from a fresh clone with only python3, make and Node/npm.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
MPY_DIR := build/mpy
BOARD ?= pico
PORT ?=
MPY ?=
UF2 ?=

.DEFAULT_GOAL := help
.PHONY: help venv test sim flash logs vboard runtime bench mpy lint format clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-stubs.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	rm -rf $(VENV)/mpy-stubs
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --target $(VENV)/mpy-stubs \
		-r requirements-stubs.txt
	@touch $@

# MicroPython's WebAssembly VM (package.json, package-lock.json) for the tests on MicroPython.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

venv: $(STAMP) ## Create .venv with the pinned dependencies

test: $(STAMP) $(NODE_STAMP) ## Run the whole test suite on every core (CPython and the MicroPython VM)
	$(BIN)/pytest -n auto

.PHONY: trace fuzz report mutate
trace: $(STAMP) ## Requirement -> tests -> last result (build/traceability.md); fails on gaps
	$(BIN)/python -m host_tools.dev.traceability

fuzz: $(STAMP) ## Longer fuzz on every core: whole unit (1000 x 40 steps), hostile host (10^5 lines)
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) FUZZ_STEPS=$(or $(FUZZ_STEPS),40) \
		FUZZ_SHARDS=$(or $(FUZZ_SHARDS),20) \
		$(BIN)/pytest -n auto tests/firmware/test_fuzz_unit.py -k whole_unit
	FUZZ_RANDOM=1 FUZZ_HOST_LINES=$(or $(FUZZ_HOST_LINES),25000) \
		$(BIN)/pytest -n auto tests/firmware/test_fuzz_host.py

mutate: $(STAMP) $(NODE_STAMP) ## Mutation tests of the safety modules (resumable; MUTANTS=n, MODULES=a,b, JOBS=n): build/mutation.md
	$(BIN)/python -m host_tools.dev.mutate $(if $(MUTANTS),--sample $(MUTANTS)) \
		$(if $(MODULES),--modules $(MODULES)) $(if $(JOBS),--jobs $(JOBS))

report: $(STAMP) $(NODE_STAMP) ## Tests, benchmarks, scenarios, waveforms, output table: report/
	$(BIN)/python -m host_tools.dev.report

sim: $(STAMP) ## Run the firmware on the simulated board in this terminal (BOARD=pico)
	$(BIN)/stimctl sim --board $(BOARD)

flash: $(STAMP) ## Flash firmware + board file to a board (PORT=/dev/ttyACM0 BOARD=pico MPY=1)
	$(BIN)/stimctl flash $(if $(PORT),--port $(PORT)) --board $(BOARD) $(if $(MPY),--mpy)

logs: $(STAMP) ## Stream the unit's log lines (PORT=/dev/ttyACM0)
	$(BIN)/stimctl logs $(if $(PORT),--port $(PORT))

vboard: $(STAMP) $(NODE_STAMP) ## A virtual board on a pseudo-terminal, until Ctrl-C (BOARD=pico)
	$(BIN)/stimctl vboard --board $(BOARD)

runtime: $(STAMP) ## Install MicroPython v1.29.0 on the board (PORT=..., UF2=file.uf2)
	$(BIN)/stimctl runtime $(if $(PORT),--port $(PORT)) $(if $(UF2),--uf2 $(UF2))

bench: $(STAMP) $(NODE_STAMP) ## Measure the performance targets into bench/results.json
	$(BIN)/python -m host_tools.dev.bench

mpy: $(STAMP) ## Compile the firmware to .mpy bytecode in build/mpy (boot.py, main.py stay .py)
	$(BIN)/python -m host_tools.dev.mpybuild --out $(MPY_DIR)

lint: $(STAMP) ## Ruff lint and format check, mypy (firmware against the rp2 stubs, host tools)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --config-file mypy-firmware.ini
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtual environment, node_modules, build/ and caches
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .hypothesis build *.egg-info
