# The two commands of the README. Both set up .venv first (tools/bootstrap.sh is idempotent).
SNAKEMAKE := .venv/bin/snakemake
PYTEST := .venv/bin/pytest

.PHONY: study own submit test unit lint report env

env:
	bash tools/bootstrap.sh

study: env  ## run the default study (config/config.yaml) on this machine
	$(SNAKEMAKE) --profile profiles/local

own: env  ## your own model: make own ONNX=model.onnx IMAGES=photos/ [SHAPE=224 or SHAPE="48 192"] [CLASSES=names.txt] [PREPROCESSING=tflite]
	.venv/bin/python -m deltamut.own_model $(ONNX) $(IMAGES) $(if $(SHAPE),--input-shape $(SHAPE)) $(if $(CLASSES),--classes $(CLASSES)) $(if $(PREPROCESSING),--preprocessing $(PREPROCESSING))

submit: env  ## the study as a SLURM batch job: make submit STUDY=my-study.yaml (profiles/gpu-cluster/head.sbatch)
	mkdir -p results/logs/head
	sbatch profiles/gpu-cluster/head.sbatch $(or $(STUDY),config/config.yaml)

test: env  ## every test: unit tests, then the slow end-to-end ones
	$(PYTEST) -q --durations=30

unit: env  ## the fast unit tests only
	$(PYTEST) -q -m "not slow"

lint: env
	.venv/bin/ruff check .
	$(SNAKEMAKE) --lint

report: env  ## one self-contained HTML report of the last study
	$(SNAKEMAKE) --profile profiles/local --report results/report.html
