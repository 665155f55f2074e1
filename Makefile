# The two commands of the README. Both set up .venv first (tools/bootstrap.sh is idempotent).
SNAKEMAKE := .venv/bin/snakemake
PYTEST := .venv/bin/pytest

.PHONY: study test unit lint report env

env:
	bash tools/bootstrap.sh

study: env  ## run the default study (config/config.yaml) on this machine
	$(SNAKEMAKE) --profile profiles/local

test: env  ## every test: unit tests, then the slow end-to-end ones
	$(PYTEST) -q

unit: env  ## the fast unit tests only
	$(PYTEST) -q -m "not slow"

lint: env
	.venv/bin/ruff check .
	$(SNAKEMAKE) --lint

report: env  ## one self-contained HTML report of the last study
	$(SNAKEMAKE) --profile profiles/local --report results/report.html
