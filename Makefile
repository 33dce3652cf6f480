# The two commands of the README. Both bootstrap what they need (idempotent).
PY := .venv/bin/python
export MUJOCO_GL ?= egl
# pytest workers: one per core of the 2-core machine the suite is budgeted on; each test file
# runs in one worker (its module fixtures are built once)
TEST_WORKERS ?= 2

.PHONY: setup demo test lint format bench

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m fosp.cli demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) benchmarks/sim_throughput.py
