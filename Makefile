VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
DEV_STAMP := $(VENV)/.dev-installed
WHEEL_VENV ?= .venv-wheel

.PHONY: demo test bench docs wheel typecheck clean torch-extra

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# The PyTorch adapter's tests run where torch is installed (WITH_TORCH=1 installs the
# CPU build; without it they are skipped).
torch-extra: $(STAMP)
	@if [ "$(WITH_TORCH)" = "1" ]; then $(PY) -c "import torch" 2>/dev/null || \
	  $(PY) -m pip install -q "torch==2.13.0" || echo "torch not installed: adapter tests skipped"; fi

demo: $(STAMP)
	$(VENV)/bin/flatminima demo --out flatminima-demo

test: $(STAMP) torch-extra
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_variation.py
	$(PY) benchmarks/bench_factorization.py

# The [docs] and [dev] extras go into the same environment, each on first use, so that
# `make test` installs and runs nothing more.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(DEV_STAMP)

# The documentation site in site/, with warnings as errors (--strict): the examples run
# while it builds, so a broken example fails it.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# sdist and wheel (built from the sdist) into dist/; then the wheel alone, in a fresh
# virtual environment, runs the quick start (python -I: the source tree is not on the path;
# --no-compile: no byte-compiling of every installed module, a minute and a half on 2 cores).
wheel: $(DEV_STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(PY) -m build --outdir dist .
	python3.11 -m venv $(WHEEL_VENV) || python3 -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --no-compile dist/*.whl
	$(WHEEL_VENV)/bin/python -I scripts/quickstart.py

# mypy on the package and on the quick start as a user's program (settings in pyproject.toml).
typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(WHEEL_VENV) flatminima-demo site dist
