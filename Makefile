# The two commands:  `make demo` (full pipeline on the built-in demo data) and `make test` (the test suite).
# Both create the virtual environment .venv on first use and reuse it afterwards.
SHELL := /bin/bash
PYTHON_SYS ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lowlight3d-installed
SHARED_DATA := $(abspath ../shared/data)
export LOWLIGHT3D_TEST_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
FACES ?=

.PHONY: venv demo test benchmark-demo benchmark-real benchmark-real-equal-iter benchmark-paper clean-demo help

help:
	@echo "make demo [FACES=dir]   generate demo faces (or use yours), train, test, print the metric table"
	@echo "make test               lint (ruff) and run the test suite (CPU)"
	@echo "make benchmark-demo     train+test every method of options/demo/benchmark_demo.yml over 2 seeds, one table"
	@echo "make benchmark-real     same on real faces (UTKFace, Yale B of LOWLIGHT3D_TEST_DATA), equal CPU budget"
	@echo "make benchmark-real-equal-iter   U-Net, V1, V3-V7 and the full method at equal iterations on real faces (hours)"
	@echo "make benchmark-paper    Table 1 + Table 2 at paper scale (GPU machine, prepared FFHQ/CelebV-Low, real VGG weights)"
	@echo "make venv               (re)create the virtual environment $(VENV) if requirements changed"

venv: $(STAMP)

# basicsr 1.4.2 ships only an sdist whose build would pull a second torch into an isolated environment
# (~8 GB, 74 s); it is therefore installed without build isolation, after torch and the build tools.
$(STAMP): requirements.txt setup.py
	@$(PYTHON_SYS) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (basicsr uses distutils)"'
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements.txt torch torchvision numpy 'setuptools>=70.1,<82' wheel cython
	$(PY) -m pip install -q --no-build-isolation -r requirements.txt
	$(PY) -m pip install -q --no-deps mediapipe==0.10.14
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) scripts/build_iqa_models.py
	touch $(STAMP)

demo: venv
	$(PY) scripts/run_demo.py $(if $(FACES),--faces $(FACES),)

benchmark-demo: venv
	$(PY) scripts/benchmark_demo.py

# Real faces: needs the shared photos (LOWLIGHT3D_TEST_DATA, default ../shared/data); they are linked, never copied.
benchmark-real: venv
	@test -n "$(LOWLIGHT3D_TEST_DATA)" || { echo "benchmark-real reads the shared photos from LOWLIGHT3D_TEST_DATA," \
		"which is unset and ../shared/data does not exist: make benchmark-real LOWLIGHT3D_TEST_DATA=/path/to/shared/data"; \
		exit 1; }
	$(PY) scripts/prepare_real_faces.py
	$(PY) scripts/benchmark_demo.py --list options/real/benchmark_real.yml --out results/benchmark_real

# The paper's Table 2 protocol on real faces: every variant trains the same iterations (resumes where it stopped).
benchmark-real-equal-iter: venv
	@test -n "$(LOWLIGHT3D_TEST_DATA)" || { echo "benchmark-real-equal-iter reads the shared photos from" \
		"LOWLIGHT3D_TEST_DATA, which is unset and ../shared/data does not exist"; exit 1; }
	$(PY) scripts/prepare_real_faces.py
	$(PY) scripts/benchmark_demo.py --list options/real/benchmark_real_equal_iter.yml --out results/benchmark_real_equal_iter

# Paper scale: every stage trains its own option file's iterations (options/benchmark_paper.yml); needs a GPU machine.
benchmark-paper: venv
	$(PY) scripts/benchmark_demo.py --list options/benchmark_paper.yml --out results/benchmark_paper

# Lint first (ruff.toml: pyflakes, pycodestyle, import order, 120 columns), then the suite.
test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q -ra tests

clean-demo:
	rm -rf experiments/demo_* results/demo_* tb_logger/demo_*
