"""Gather the default real photos (Python packages, plus Debian packages when apt can fetch them)."""

from deltamut.data import default_debian_cache, gather_default_images
from deltamut.joblog import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    paths = gather_default_images(snakemake.output[0], debian_cache=default_debian_cache())  # noqa: F821
    print(f"{len(paths)} photos")
