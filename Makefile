# `make test` and `make demo` install into .venv on first use.
# torch comes first, pinned to the CPU build this machine carries; a GPU user installs the
# CUDA build instead with e.g. `make TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test test-fast demo study install bench clean

$(BIN)/scalelab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/scalelab

# Tiny test models train fastest on one thread, and parallel-worker tests then do not oversubscribe.
TEST_ENV := WANDB_MODE=disabled OMP_NUM_THREADS=1
# One test worker per core; a file's tests stay on one worker, so its shared fixtures are built once.
PYTEST := $(BIN)/python -m pytest -q -n auto --dist loadfile

test: install
	$(TEST_ENV) $(PYTEST)

# Everything but the `slow` tests: those that start processes (sweeps, kill-and-resume, data parallelism,
# installs) or take seconds.
test-fast: install
	$(TEST_ENV) $(PYTEST) -m "not slow"

demo: install
	WANDB_MODE=offline $(BIN)/scalelab train model=gpt_xs train.tokens=4e5 \
		hydra.run.dir=runs/demo
	@echo "run record: runs/demo/run.json"

# The whole scaling study (sweeps/ladder.yaml): ladder, laws, prediction, verification, report.
study: install
	WANDB_MODE=offline $(BIN)/scalelab train -m sweeps=ladder
	$(BIN)/scalelab report runs/sweeps/ladder --out runs/sweeps/ladder/report
	@echo "verdict: runs/sweeps/ladder/verdict.json; report: runs/sweeps/ladder/report/index.html"

bench: install
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs outputs multirun wandb
