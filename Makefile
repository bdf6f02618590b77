# The README's two commands: `make demo` (the whole workflow, quick profile) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Rules call `python -m partialkd...`: the environment must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test install full record restore clean-results status report report-screenshot

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The demo's Fashion-MNIST comes from Debian's package where apt-get and root allow it (the
# script only warns otherwise: the workflow then tries the download).
demo: $(STAMP)
	bash workflow/scripts/install_fashion_mnist.sh || true
	$(BIN)/snakemake --profile workflow/profiles/quick

test: $(STAMP)
	$(BIN)/python -m pytest

full: $(STAMP)
	$(BIN)/snakemake --profile workflow/profiles/local

# Where a run stands, safe beside it: `make status` for `make demo`'s run,
# `make status PROFILE=workflow/profiles/local` for `make full`'s.
PROFILE ?= workflow/profiles/quick
status: $(STAMP)
	$(BIN)/python -m partialkd.status --profile $(PROFILE)

# After a run (`make report PROFILE=...` as for status): the HTML report, one self-contained file
# that opens on the claims' verdicts and forest plots; `make report-screenshot` draws its first
# screen with headless Chromium.
REPORT := report.html
report: $(STAMP)
	$(BIN)/snakemake --profile $(PROFILE) --report $(REPORT) --report-stylesheet workflow/report/report.css \
		|| { echo "No report: it needs a finished run of this profile, up to date (see the error above)." >&2; exit 1; }
	@echo "The report: $(abspath $(REPORT)) (open it in any browser, e.g. xdg-open $(REPORT))"

report-screenshot:
	bash workflow/scripts/screenshot_report.sh $(REPORT) $(REPORT:.html=.png)

# After a plain `snakemake` run: record every result in DVC without recomputing anything. A
# track with no diagnoses or no trained teacher has an empty folder for DVC (as `dvc repro` makes).
record: $(STAMP)
	for track in results/*/; do mkdir -p "$$track/diagnoses" "$$track/teachers"; done
	$(BIN)/dvc commit --force
	$(BIN)/dvc status

# In a fresh clone: fetch every dataset, checkpoint and result from the DVC remote, then mark
# them up to date for Snakemake (times and metadata), so that nothing is recomputed.
restore: $(STAMP)
	$(BIN)/dvc pull
	$(BIN)/snakemake --cores 1 --touch --quiet
	$(BIN)/snakemake --dry-run --quiet

clean-results:
	rm -rf results paper/figures paper/REPORT.md paper/tables paper/generated paper/main.pdf .snakemake logs benchmarks
