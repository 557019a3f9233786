# Two commands from a fresh clone: `make demo` and `make test`.
# Both create .venv on first use and are quick when it is current.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Re-install when the dependency lists change.
DEPS_STAMP := $(VENV)/.deps-base
TEST_STAMP := $(VENV)/.deps-test
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0
# The backend-agnostic parts, tested on every Keras backend.
BACKEND_TESTS := tests/layers tests/decoding tests/seq2seq

.PHONY: demo test lint wheel-check bench bench-tfa clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PIP) install -q -e ".[text]"
	touch $@

# The backend matrix: PyTorch's CPU wheel (on this machine's disk) and JAX.
$(TEST_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0 jax
	$(PIP) install -q -e ".[test]"
	touch $(DEPS_STAMP) $@

# Debian's Chromium for the page test of `keras-nmt serve` (Playwright drives
# it; it never downloads a browser). Installed when missing and we are root
# (CI); elsewhere the page test is skipped with the install command.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: no chromium; the page test is skipped (apt-get install chromium)"; fi; }

demo: $(DEPS_STAMP)
	$(PY) -m keras_nmt demo

lint: $(TEST_STAMP)
	$(PY) -m ruff check keras_nmt tests benchmarks

# The whole suite on TensorFlow, then the backend-agnostic parts (layers,
# seq2seq, decoding) on JAX and PyTorch against the same references, then
# the wheel.
test: $(TEST_STAMP) lint browser
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q
	KERAS_BACKEND=jax $(PY) -m pytest -q -m "not slow" $(BACKEND_TESTS)
	KERAS_BACKEND=torch $(PY) -m pytest -q -m "not slow" $(BACKEND_TESTS)
	$(MAKE) --no-print-directory wheel-check

# Build the wheel from the tree, install it (and nothing of the tree) into a
# fresh venv with JAX and no TensorFlow, and use it on the JAX backend: the
# layers compute, the demo corpus is inside, the command is installed.
wheel-check: $(TEST_STAMP)
	rm -rf build dist /tmp/keras-nmt-wheel-venv
	$(PY) -m build --wheel --no-isolation --outdir dist . > /dev/null
	$(PYTHON) -m venv /tmp/keras-nmt-wheel-venv
	/tmp/keras-nmt-wheel-venv/bin/pip install -q --disable-pip-version-check dist/*.whl jax
	cd /tmp && KERAS_BACKEND=jax /tmp/keras-nmt-wheel-venv/bin/python -c \
	  "import keras_nmt as ka, numpy as np; \
	   c = ka.BahdanauAttention(4)(np.ones((1, 2, 3)), np.ones((1, 5, 3))); \
	   assert c.shape == (1, 2, 3), c.shape; \
	   import importlib.util as u; assert not u.find_spec('tensorflow'); \
	   from keras_nmt.datasets import spa_eng_small_path as p, notice_path as n; \
	   assert p().is_file() and n().is_file(), p(); \
	   print('wheel OK: keras-nmt', ka.__version__, 'from', ka.__file__)"
	test -x /tmp/keras-nmt-wheel-venv/bin/keras-nmt

bench: $(TEST_STAMP)
	$(PY) -m benchmarks.layers

# TensorFlow Addons' tfa.seq2seq next to ours on its classic model, in a venv
# of its own (.venv-tfa): tfa needs TensorFlow < 2.16, whose wheels are for
# CPython 3.9-3.11. About 7 minutes after the one-time install; prints the
# table of ratios and writes it to benchmarks/results/tfa_baseline.md. Not
# part of `make test`.
TFA_VENV := .venv-tfa
TFA_STAMP := $(TFA_VENV)/.deps-tfa
TFA_PY_OK := import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))
$(TFA_STAMP):
	@py=; for p in $(PYTHON) python3.11 python3.10 python3.9; do \
	  if $$p -c '$(TFA_PY_OK)' >/dev/null 2>&1; then py=$$p; break; fi; \
	done; \
	test -n "$$py" || { echo "bench-tfa: TensorFlow 2.15 needs Python" \
	  "3.9-3.11 (python3.11, python3.10 or python3.9); none found" >&2; \
	  exit 1; }; \
	echo "bench-tfa: $$py -m venv $(TFA_VENV)"; $$py -m venv $(TFA_VENV)
	$(TFA_VENV)/bin/pip install -q --disable-pip-version-check \
	  tensorflow==2.15.1 tensorflow-addons==0.23.0
	touch $@

bench-tfa: $(DEPS_STAMP) $(TFA_STAMP)
	$(PY) -m benchmarks.tfa_baseline --output benchmarks/results/tfa_baseline.md

clean:
	rm -rf $(VENV) build dist *.egg-info
