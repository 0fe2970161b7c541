# head-roles: every target creates .venv when it is missing.
# TORCH pins the torch wheel installed first (an unpinned torch pulls a multi-GB CUDA build).
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
# PY and HEAD_ROLES may name another environment's tools (make bench PY=... HEAD_ROLES=...):
# then no .venv is created here.
PY ?= $(VENV)/bin/python
HEAD_ROLES ?= $(VENV)/bin/head-roles
# The 2,316 real TinyStories stories every target below reads (committed: corpora/NOTICE.md).
STORIES_FILE := corpora/tinystories-train-2316.txt
# MODEL empty: TinyStories-1Layer-21M, or where the hub cannot be reached the stories260K model
# embedded in the package, on its embedded TinyStories stories (said on stderr). MODEL=M never falls back.
MODEL ?=
STORIES ?= 500

.PHONY: install test test-fast report demo bench track track-training track-shapes selfcheck stories260k devmodels \
	dev-1l agreement clean

install: $(if $(filter $(VENV)/bin/python,$(PY)),$(VENV)/.installed)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# The tests that need no trained model and no long scoring (pyproject.toml's `slow` marker
# leaves out the others): under 2 minutes on 2 CPU cores. CI runs `make test`.
test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

report: install
	$(HEAD_ROLES) report $(if $(MODEL),--model $(MODEL)) --corpus tinystories --stories $(STORIES) $(if $(OUT),--out $(OUT))

demo: install
	HF_HUB_OFFLINE=1 $(HEAD_ROLES) demo --out reports/demo

selfcheck: install
	HF_HUB_OFFLINE=1 $(HEAD_ROLES) selfcheck --seeds 5

# BENCH_OPTIONS: e.g. --startup-only (the fixed cost and start-up table), --stories 32 --rss-stories 20,200.
BENCH_OPTIONS ?=

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m tools.bench --corpus $(STORIES_FILE) $(BENCH_OPTIONS)

# The TinyStories family, each base model beside its Instruct variant (official spelling `Instuct`).
TRACK_MODELS ?= roneneldan/TinyStories-1M roneneldan/TinyStories-Instruct-1M \
	roneneldan/TinyStories-3M roneneldan/TinyStories-Instruct-3M \
	roneneldan/TinyStories-8M roneneldan/TinyStories-Instruct-8M \
	roneneldan/TinyStories-28M roneneldan/TinyStories-Instruct-28M \
	roneneldan/TinyStories-33M roneneldan/TinyStories-Instruct-33M \
	roneneldan/TinyStories-2Layers-33M roneneldan/TinyStories-Instruct-2Layers-33M \
	roneneldan/TinyStories-1Layer-21M roneneldan/TinyStories-Instuct-1Layer-21M

track: install
	$(HEAD_ROLES) track $(TRACK_MODELS) --corpus tinystories --stories $(STORIES) \
		--store reports/track/runs --out reports/track

# Roles forming over training: every checkpoint of the two development models (devmodels/; the
# 1L model is rebuilt into devmodels/build/ by `make devmodels`, the 4L one is committed), then
# stories260K beside the development models' final checkpoints (different shapes: heads matched
# by profile). The same 200 real stories for all, 256 tokens at most (the development models'
# context), 200 bootstrap resamples. Finished runs are kept in each folder's runs/ (not
# committed: `track`'s default store, OUT/runs) and reused, so a second run scores nothing. JOBS=2 scores two checkpoints at once.
# From an empty store in a fresh clone on 2 CPU cores shared with other jobs (load about 4):
# track-training 38 min for the 18 checkpoints (each scores 200 stories and ablates on 20: most
# of it is importance), after 16 min training the 1L model; track-shapes about 7 min; again:
# under 10 s, nothing scored.
JOBS ?= 1
TRACK_OPTIONS := --corpus $(STORIES_FILE) --stories 200 --max-tokens 256 \
	--bootstrap 200 --device cpu --jobs $(JOBS)
DEV_1L := devmodels/build/tinystories-1L-dev
DEV_4L := devmodels/tinystories-4L-dev

track-training: install dev-1l
	HF_HUB_OFFLINE=1 $(HEAD_ROLES) track $(DEV_1L)/checkpoints $(DEV_4L)/checkpoints $(TRACK_OPTIONS) \
		--out reports/track-training

track-shapes: install dev-1l
	HF_HUB_OFFLINE=1 $(HEAD_ROLES) track stories260K $(DEV_1L) $(DEV_4L) $(TRACK_OPTIONS) --compare reference \
		--out reports/track-shapes

stories260k: install
	HF_HUB_OFFLINE=1 $(HEAD_ROLES) report --model stories260K --corpus $(STORIES_FILE) --stories 0 \
		--out reports/stories260K

# Small TinyStories models trained here on the committed stories and tokenizers
# (docs/development-set.md; devmodels/gpt2-tokenizer/NOTICE.md): the 4L
# model is committed under devmodels/, the 1L model is rebuilt into devmodels/build/. A model
# whose training.json records the current configuration and data (by sha256) is kept (otherwise about 14 minutes
# each on 2 shared CPU cores).
devmodels: install
	HF_HUB_OFFLINE=1 $(PY) -m devmodels.train --model all

# The 1L development model is not committed: a clone trains it first. Its training.json is written
# last (after the checkpoints and the final model), so a half-written one from an interrupted
# training is trained again.
dev-1l: install
	@test -f $(DEV_1L)/training.json || { \
		echo "$(DEV_1L) is missing: training it first with \`make devmodels\` (about 14 min on one idle core)" >&2; \
		$(MAKE) devmodels; }

# The classifier's primary roles against the development models' hand labels -> devmodels/agreement.md
agreement: install dev-1l
	HF_HUB_OFFLINE=1 $(PY) -m devmodels.agreement

clean:
	rm -rf $(VENV) .pytest_cache head_roles.egg-info
