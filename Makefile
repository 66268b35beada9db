# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   runs configs/demo.yaml on the embedded SmolLM2-135M-Instruct (QUICK=1: smoke run)
#   make test   runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test rehearsal lint bench clean

# torch is pinned to the CPU wheel first, so nothing later pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/langshift run configs/demo.yaml $(if $(QUICK),--quick,)
	@echo
	@$(PY) -m langshift.export.best runs/demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# every configs/paper config end to end, offline on hub stand-ins (README: "Rehearsal"); part of `make test`
rehearsal: $(STAMP)
	$(PY) -m pytest -q tests/rehearsal --durations=0

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/translate.py
	$(PY) bench/eval_belebele.py
	$(PY) bench/eval_generate.py
	$(PY) bench/eval_langpref.py

clean:
	rm -rf $(VENV) runs .pytest_cache
