"""Draw one model's report figures."""

from deltamut.joblog import job_log
from deltamut.report.stage import report_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    report_stage(sm.wildcards.model,
                 {k: sm.input[k] for k in ("per_image", "per_pair", "kill_matrix")},
                 sm.input.dataset, sm.params.variants, sm.params.reference, dict(sm.output.items()))
