"""Gather the default real photos (Python packages, plus Debian packages when apt can fetch them)."""

from deltamut.data.stage import photos_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    photos_stage(outputs=dict(sm.output.items()))
