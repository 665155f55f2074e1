"""The zoo's architecture names, importable without torch.

Planning a study (`snakemake -n`) checks every model's `arch` against this list, so a typo stops the run
before any job starts; `deltamut.models.zoo` refuses to import if its table and this list drift apart.
"""

ZOO_ARCHS: tuple[str, ...] = (
    "alexnet",
    "densenet121",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "inception_v3",
    "mobilenet_v2",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet50",
    "shufflenet_v2",
    "squeezenet1_0",
    "squeezenet1_1",
    "vit_b_16",
    "vit_ti_16",
)
