# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned so pip takes the build that lies on this project's machines instead of resolving
# the newest multi-GB CUDA wheel; override on your own machine, e.g.
#   make demo TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Foolbox imports GitPython, which raises at import when no git executable exists.
export GIT_PYTHON_REFRESH ?= quiet
# Where `make demo` writes the synthetic data, the checkpoint and the run.
DEMO_OUT ?= runs/demo
PRESET   ?= demo

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "advparity needs Python >= 3.10, got " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,lint,dev,ray]"
	@touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python -m harness demo --preset $(PRESET) --out $(DEMO_OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow" -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache build *.egg-info
