"""Index the mutants of one (model, optimisation): which ones duplicate another and are not built."""

from deltamut.joblog import job_log
from deltamut.mutations.stage import mutant_index_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    mutant_index_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()))
