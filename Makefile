# The README's two commands: `make demo` (the whole workflow, quick profile) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Rules call `python -m partialkd...`: the environment must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test install full clean-results

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --profile workflow/profiles/quick

test: $(STAMP)
	$(BIN)/python -m pytest

full: $(STAMP)
	$(BIN)/snakemake --profile workflow/profiles/default

clean-results:
	rm -rf results paper/figures paper/REPORT.md .snakemake logs benchmarks
