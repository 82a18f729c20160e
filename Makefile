# The README's commands. Each sets up .venv in the checkout on first use.
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.t2g-installed
# CPU machines: constraints/cpu.txt pins the CPU build of torch so pip never pulls CUDA.
CONSTRAINTS ?= constraints/cpu.txt

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/t2g run --config configs/tiny.yaml

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"  # soaks: pytest -m slow

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf .t2g .pytest_cache .hypothesis
