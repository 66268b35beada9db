# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   runs configs/demo.yaml on the embedded SmolLM2-135M-Instruct (QUICK=1: smoke run)
#   make test   runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install preflight demo test rehearsal lint bench clean

# llama.cpp (through llama-cpp-python) is built for any x86-64 with AVX2, never for the build machine:
# llama.cpp's default (GGML_NATIVE) tunes to the CPU it compiles on, and such a build died with SIGILL
# (AMX tile loads) on a machine of the same kind. Native tuning off, instruction sets named; on other
# architectures only native tuning is turned off. The wheel is cached under a key of version + flags,
# so a later clone reuses it, and a wheel pip cached with other flags is never picked up.
LLAMA_CPP_VERSION := 0.3.36
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
endif
LLAMA_KEY    := $(shell printf '%s %s %s' '$(LLAMA_CPP_VERSION)' '$(ARCH)' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_WHEELS ?= $(HOME)/.cache/langshift/wheels/llama-cpp-python-$(LLAMA_KEY)

# torch is pinned to the CPU wheel first, so nothing later pulls a CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" FORCE_CMAKE=1 $(PIP) wheel -q --no-deps --no-cache-dir \
	    -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(PIP) install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/langshift run configs/demo.yaml $(if $(QUICK),--quick,)
	@echo
	@$(PY) -m langshift.export.best runs/demo

# the preflight decodes one token of a quantized GGUF in a child process: a llama.cpp build this
# machine cannot run stops here in seconds, with the signal and the fix, not 12 minutes into the suite
preflight: $(STAMP)
	$(VENV)/bin/langshift doctor --preflight

# The suite runs on up to 4 worker processes (pytest-xdist), one per core: each test runs torch on one
# thread, so 2 cores run it in 0.6 of the serial time. PYTEST_JOBS=0 runs it serially in one process.
PYTEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: preflight
	$(PY) -m pytest -q $(if $(filter 0,$(PYTEST_JOBS)),,-n $(PYTEST_JOBS) --dist worksteal) $(PYTEST_ARGS)

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
