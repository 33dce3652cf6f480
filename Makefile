# The two commands of the README. Both bootstrap what they need (idempotent).
PY := .venv/bin/python
export MUJOCO_GL ?= egl

.PHONY: setup demo test lint format bench

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m fosp.cli demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) benchmarks/sim_throughput.py
