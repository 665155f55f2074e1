"""deltamut: does a model still behave the same once exported, compiled, optimised, mutated and deployed?

The library holds all logic of the Snakemake pipeline; each stage's script calls one entry function of
the package named after the stage. Packages depend downwards only (compare never imports compiler).
"""

__version__ = "0.1.0"
