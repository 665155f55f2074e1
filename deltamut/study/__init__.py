"""The study: what the config expands into, for the rules (`rules/common.smk`) and the compare stage.

- `refs`: the names of models (`ModelRef`: a model, a conversion `model@conversion`, a batched build
  `model+b8`) and of variants (`variant_id`, `parse_variant_id`);
- `catalog`: the mutations, checked against their operators when the study is planned;
- `plan`: `Study`, the axes, mutants, variants, pairs and files of a study;
- `checks`: references between sections of the config that the schema cannot express.

Imports neither TVM nor torch: planning a large study with `snakemake -n` stays fast.
"""

from deltamut.study.catalog import Catalog, StudyError
from deltamut.study.plan import Study
from deltamut.study.refs import (
    CONVERSION_SEP,
    FLOAT64,
    ORIGINAL,
    PRIMARY,
    TVM,
    ModelRef,
    framework_id,
    parse_variant_id,
    variant_id,
)

__all__ = ["CONVERSION_SEP", "FLOAT64", "ORIGINAL", "PRIMARY", "TVM", "Catalog", "ModelRef", "Study", "StudyError",
           "framework_id", "parse_variant_id", "variant_id"]
