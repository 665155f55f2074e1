"""The report's figures, by name: what the plots rule writes for each model and the study asks for.

Apart from `deltamut.report` so that planning (`deltamut.study`) can name them without importing matplotlib.
"""

PLOTS: tuple[str, ...] = ("heatmap", "kill_matrix", "sites", "latency", "gallery")
