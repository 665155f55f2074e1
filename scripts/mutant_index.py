"""Index the mutants of one (model, optimisation): which ones duplicate another and are not built."""

from pathlib import Path

from deltamut.joblog import job_log
from deltamut.mutations.equivalence import index_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    index_stage({Path(p).parent.name: p for p in sm.input}, sm.output[0])  # results/.../{mutant}/manifest.json
