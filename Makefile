# Two commands do all set-up on a fresh machine:
#   make demo       virtualenv + install + build ml-100k + the idea in about 2 minutes on 2 cores
#   make test       virtualenv + install + lint (ruff) + the test suite (builds ml-100k in the data home once)
#   make demo-full  the README's complete tables (about 25 minutes on 2 cores)
#   make test-cuda  the CUDA contract tests alone (on a machine with a GPU; they skip elsewhere)
#   make claims-readme  the README's verdict table and cell count, from docs/results/claims/claims.json
#   make bench      s/epoch, s/evaluation and peak RSS of a few models, one list per run
#   make bench-scale MODEL=lightgcn [DENOISER=guider] [PRESETS=a,b,...] [THREADS=N]
#                   the same across synth-tiny -> synth-microlens, each dataset in a fresh process:
#                   prints the table, writes docs/results/scale/MODEL/scale.{md,json,png} (the PNG is
#                   the log-log fit of cost vs interactions; minutes on 2 cores: run it on an idle machine)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-cuda demo demo-full claims-readme bench bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# pinned first so the local CPU wheel is used (a bare `torch` pulls CUDA builds)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[features,test,ray]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-cuda: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/models/test_backbones.py \
		tests/graphs/test_adjacency.py -k cuda

# THREADS=N caps torch/BLAS threads (e.g. `make demo THREADS=1` on a machine shared with other jobs)
demo: $(STAMP)
	$(BIN)/mmdenoise data build ml-100k
	$(BIN)/python -m mmdenoise.experiments.demo $(if $(THREADS),--threads $(THREADS))

demo-full: $(STAMP)
	$(BIN)/mmdenoise data build ml-100k
	$(BIN)/python -m mmdenoise.experiments.demo --full $(if $(THREADS),--threads $(THREADS))

claims-readme: $(STAMP)
	$(BIN)/python -m mmdenoise.experiments.claims.readme README.md docs/results/claims

bench: $(STAMP)
	$(BIN)/mmdenoise bench -d ml-100k -m lightgcn
	$(BIN)/mmdenoise bench -d synth-baby -m lightgcn
	$(BIN)/mmdenoise bench -d synth-baby -m freedom
	$(BIN)/mmdenoise bench -d synth-baby -m freedom --denoiser guider --set warmup_epochs=1

MODEL    ?= lightgcn
DENOISER ?= none
bench-scale: $(STAMP)
	$(BIN)/mmdenoise bench --scale -m $(MODEL) --denoiser $(DENOISER) $(if $(PRESETS),--presets $(PRESETS)) \
		$(if $(THREADS),--set train.threads=$(THREADS))

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
