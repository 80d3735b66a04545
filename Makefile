# Two commands for a fresh machine with Python 3.10-3.12:
#   make lab    create .venv if missing, install everything, open JupyterLab on the course
#   make test   create/refresh .venv if needed and run the whole suite (quick profile, offline)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.course-installed
# The quick profile and no Hub: what CI runs. OMP_WAIT_POLICY=PASSIVE stops idle torch threads from
# spinning: on two shared cores, spinning threads of one process (pytest) starve another (a notebook kernel),
# and a training step measured 10x slower with the default policy than without it.
TEST_ENV := COURSE_PROFILE=quick HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_WAIT_POLICY=PASSIVE

.PHONY: lab test install ffmpeg exercises bench clean help imports

help:
	@echo "make lab    - install (first time) and open JupyterLab on the course"
	@echo "make test   - install (first time) and run the whole test suite"
	@echo "make exercises - regenerate exercises/ from solutions/"
	@echo "make bench  - run the benchmarks (slow; not part of the tests)"

# (Re)install when the pins or the package metadata change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,lab,audio-io]"
	@touch $(STAMP)

install: $(STAMP) ffmpeg

# datasets' Audio feature decodes through torchcodec, which needs the system FFmpeg libraries.
ffmpeg:
	@bash scripts/ensure_ffmpeg.sh

lab: install
	$(BIN)/python -m course_lib.tools.lab

test: install
	$(BIN)/lint-imports --config .importlinter
	$(TEST_ENV) $(BIN)/python -m course_lib.tools.exercises check
	$(TEST_ENV) $(BIN)/python -m pytest tests notebooks solutions --nbval-lax --nbval-current-env --ignore=tests/fixtures -p no:cacheprovider

# The package's layers (README, "Layout"): arrows point down only, teacher tools stand apart.
imports: $(STAMP)
	$(BIN)/lint-imports --config .importlinter

exercises: $(STAMP)
	$(BIN)/python -m course_lib.tools.exercises build

bench: install
	$(BIN)/python bench/bench_spectrogram.py
	$(BIN)/python bench/bench_preprocess.py
	$(BIN)/python bench/bench_sampling.py
	$(BIN)/python bench/bench_finetune.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
