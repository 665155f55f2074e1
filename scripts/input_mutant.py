"""Preprocess the dataset for one model with an input-level mutation applied to every photo first."""

from deltamut.data.stage import dataset_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    dataset_stage(outputs=dict(sm.output.items()), model=sm.wildcards.model, model_spec=sm.params.model,
                  images=sm.params.images, labels=sm.params.labels, limit=sm.params.limit, spec=dict(sm.params.spec),
                  window=sm.params.window)
