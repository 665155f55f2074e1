"""Preprocess the dataset for one model (and, for an input-level mutant, transform every photo first)."""

from deltamut.data.stage import prepare_inputs
from deltamut.joblog import job_log
from deltamut.models import load_model

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    prep = load_model(sm.wildcards.model, sm.params.model).preprocessing
    transform, seed = None, 0
    if "spec" in sm.params.keys():  # noqa: SIM118 (Namedlist: `in` tests values)
        from deltamut.mutations import transform_image

        spec = dict(sm.params.spec)
        seed = int(spec.get("seed", 0))
        transform = lambda im, s: transform_image(im, spec, s)  # noqa: E731
    prepare_inputs(sm.params.images, sm.params.labels, sm.params.limit, prep, sm.output.inputs,
                   sm.output.manifest, transform=transform, seed=seed)
