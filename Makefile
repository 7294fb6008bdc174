VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean torch-extra

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

clean:
	rm -rf $(VENV) flatminima-demo
