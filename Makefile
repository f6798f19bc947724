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
# The optional libraries (pyproject extras secml, adv-lib, deeprobust, advertorch, cleverhans, autoattack), pinned
# likewise. Each is installed on its own; one that does not install here is reported and later skipped
# with one line.
SECML_SPEC      ?= secml-torch==1.5
ADVLIB_SPEC     ?= adv-lib==0.2.8
VISDOM_SPEC     ?= visdom==0.2.4
DEEPROBUST_SPEC ?= deeprobust==0.2.11
ADVERTORCH_SPEC ?= advertorch==0.2.3
CLEVERHANS_SPEC ?= cleverhans==4.0.0
AUTOATTACK_SPEC ?= pyautoattack==0.2.0
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Foolbox imports GitPython, which raises at import when no git executable exists.
export GIT_PYTHON_REFRESH ?= quiet
# Where `make demo` writes the synthetic data, the checkpoint and the run.
DEMO_OUT ?= runs/demo
PRESET   ?= demo
# Where `make regress` trains and attacks the `ci` preset (from scratch every time), and its baseline.
CI_OUT   ?= runs/ci
BASELINE ?= reports/baselines/ci.json

.PHONY: demo test test-fast regress lint install clean clean-runs

$(BIN)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "advparity needs Python >= 3.10, got " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_SPEC)
	$(PIP) $(ATTACK_LIBS)
	$(PIP) -e ".[test,lint,dev,ray]"
	@# Their own dependencies are already here (torch, torchvision, numpy, Foolbox), hence --no-deps:
	@# secml-torch would otherwise churn setuptools, DeepRobust pull numba, gensim and scikit-image
	@# that its image attacks never import.
	$(PIP) --no-deps $(SECML_SPEC) || echo "advparity: $(SECML_SPEC) did not install; runs will skip it"
	$(PIP) --no-deps $(DEEPROBUST_SPEC) || echo "advparity: $(DEEPROBUST_SPEC) did not install; runs will skip it"
	@# visdom (an adv-lib dependency) has only a source package whose setup.py needs pkg_resources,
	@# gone from setuptools 82: build it without isolation against an older setuptools.
	( $(PIP) "setuptools>=70.1,<82" && $(PIP) --no-build-isolation $(VISDOM_SPEC) && $(PIP) $(ADVLIB_SPEC) ) \
		|| echo "advparity: $(ADVLIB_SPEC) did not install; runs will skip it"
	@# Installs, but fails on import with current torch: its cells get the verdict "unavailable".
	$(PIP) --no-deps $(ADVERTORCH_SPEC) || echo "advparity: $(ADVERTORCH_SPEC) did not install; runs will skip it"
	@# CleverHans declares TensorFlow Probability, mnist, nose and more for its TF and JAX code; its
	@# torch attacks import only NumPy and torch, already here.
	$(PIP) --no-deps $(CLEVERHANS_SPEC) || echo "advparity: $(CLEVERHANS_SPEC) did not install; runs will skip it"
	@# The original AutoAttack: the APGD reference is tested against it bit for bit (no dependencies).
	$(PIP) --no-deps $(AUTOATTACK_SPEC) || echo "advparity: $(AUTOATTACK_SPEC) did not install; its tests will skip"
	@touch $@

install: $(BIN)/.installed

# Exit 1 means the cross-check found a library that disagrees: that is the demo's finding (the report
# says which and why), not a failure of the demo. Anything else (2 bad input, 3 internal) fails.
demo: $(BIN)/.installed
	$(BIN)/python -m advparity demo --preset $(PRESET) --out $(DEMO_OUT); code=$$?; \
	if [ $$code -eq 1 ]; then echo "make demo: some library disagrees with the reference (exit 1): see the report"; \
	elif [ $$code -ne 0 ]; then exit $$code; fi

test: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow" -q
	@$(MAKE) --no-print-directory regress

# The unit tests alone: no training, no end-to-end run, no mutation suite (tests/conftest.py marks them).
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow and not e2e and not mutation" -q

# The `ci` preset from scratch (synthetic data, fixed seeds, CPU), then its accuracies and verdicts
# against the committed baseline: exit 1 with a diff when a number drifts (see reports/regress.py).
# A deliberate change of the numbers: `make regress` fails, then
#   .venv/bin/python -m advparity regress runs/ci/run --baseline reports/baselines/ci.json --update
regress: $(BIN)/.installed
	rm -rf $(CI_OUT)
	$(BIN)/python -m advparity -q train --preset ci --out $(CI_OUT)/model
	$(BIN)/python -m advparity -q run --preset ci --checkpoint $(CI_OUT)/model/model.safetensors --out $(CI_OUT)/run
	$(BIN)/python -m advparity regress $(CI_OUT)/run --baseline $(BASELINE)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Results are not build output: `clean` never touches runs/, where a paper run may have cost hours.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# Only the two directories these make targets write (both reproducible from scratch); other runs stay.
clean-runs:
	rm -rf $(DEMO_OUT) $(CI_OUT)
