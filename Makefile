# The README's two commands. Each one sets up everything it needs first:
# the virtual environment, PyTorch, learn2learn (rebuilt for Python >= 3.11),
# this package, and links to the shared data when they are beside the clone.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
SHARED_DATA ?= ../shared/data
DATA_ROOT   ?= data
BENCH_ARGS  ?= --suite omniglot-5way
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test bench setup data clean-venv

test: setup data
	FEWSHOT_MEM_DATA=$(abspath $(DATA_ROOT)) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup data
	FEWSHOT_MEM_DATA=$(abspath $(DATA_ROOT)) $(BIN)/python -m fewshot_mem.bench $(BENCH_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml tools/build_learn2learn.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "fewshot-mem needs Python >= 3.11 (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python tools/build_learn2learn.py
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Links (never copies into, never writes to) the shared data set beside the clone.
data:
	@$(PYTHON) tools/link_data.py --shared $(SHARED_DATA) --data-root $(DATA_ROOT)

clean-venv:
	rm -rf $(VENV)
