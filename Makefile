# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned so pip takes the build that lies on this project's machines instead of resolving
# the newest multi-GB CUDA wheel; override on your own machine, e.g.
#   make demo TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The attack-library releases whose behaviour the adapters declare and the mutation suite plants bugs
# in (pyproject.toml has the lower bounds; tox's libs-oldest/libs-newest test the range). Override to
# try others: make test ATTACK_LIBS="adversarial-robustness-toolbox torchattacks foolbox"
ATTACK_LIBS ?= adversarial-robustness-toolbox==1.20.1 torchattacks==3.5.1 foolbox==3.3.4
# Foolbox imports GitPython, which raises at import when no git executable exists.
export GIT_PYTHON_REFRESH ?= quiet
# Where `make demo` writes the synthetic data, the checkpoint and the run.
DEMO_OUT ?= runs/demo
PRESET   ?= demo
# Where `make regress` trains and attacks the `ci` preset (from scratch every time), and its baseline.
CI_OUT   ?= runs/ci
BASELINE ?= reports/baselines/ci.json

.PHONY: demo test regress lint install clean clean-runs

$(BIN)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "advparity needs Python >= 3.10, got " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(ATTACK_LIBS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,lint,dev,ray]"
	@touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python -m harness demo --preset $(PRESET) --out $(DEMO_OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow" -q
	@$(MAKE) --no-print-directory regress

# The `ci` preset from scratch (synthetic data, fixed seeds, CPU), then its accuracies and verdicts
# against the committed baseline: exit 1 with a diff when a number drifts (see reports/regress.py).
# A deliberate change of the numbers: `make regress` fails, then
#   .venv/bin/python -m harness regress runs/ci/run --baseline reports/baselines/ci.json --update
regress: $(BIN)/.installed
	rm -rf $(CI_OUT)
	$(BIN)/python -m harness -q train --preset ci --out $(CI_OUT)/model
	$(BIN)/python -m harness -q run --preset ci --checkpoint $(CI_OUT)/model/model.safetensors --out $(CI_OUT)/run
	$(BIN)/python -m harness regress $(CI_OUT)/run --baseline $(BASELINE)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Results are not build output: `clean` never touches runs/, where a paper run may have cost hours.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# Only the two directories these make targets write (both reproducible from scratch); other runs stay.
clean-runs:
	rm -rf $(DEMO_OUT) $(CI_OUT)
