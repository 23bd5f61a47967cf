# One-command set-up: both `make run` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= $(abspath ../shared)
UTKFACE ?= $(SHARED)/data/utkface/UTKFace.tar.gz
OUT    ?= results
# Test processes (pytest-xdist); the cores are split between them (tests/conftest.py). 1 runs in-process.
TEST_WORKERS ?= 2
export TORCH_HOME ?= $(SHARED)/torch

.PHONY: run test bench clean

# constraints.txt pins the torch/torchvision builds that install offline here; pyproject.toml keeps lower
# bounds only, so users on GPUs bring their own torch build.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,ray]'
	touch $@

# The main job: the whole study. Synthetic faces with the quick preset, or DATA=path/to/UTKFace.tar.gz
# for real data with the thesis preset.
run: $(BIN)/.installed
	$(BIN)/olvido run --out $(OUT) $(if $(DATA),--data $(DATA),--preset quick)

# The test command: lint and format check (ruff, line length 120), then the suite.
test: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	OLVIDO_UTKFACE=$(UTKFACE) $(BIN)/python -m pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_prepare.py --data $(UTKFACE)
	$(BIN)/python bench/bench_models.py --data $(UTKFACE)

clean:
	rm -rf $(VENV) .pytest_cache
