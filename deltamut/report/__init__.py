"""The report's figures: PNGs drawn from the compare tables that `snakemake --report` embeds in one HTML file.

One module per figure (heatmap, killmatrix, sites, latency, gallery) and `stage.plots_stage`, the entry point of
the `plots` rule. Every figure function draws *something* for any table the compare stage can write (no
mutants, no labels, failed variants), with a note saying what is missing, because a report that dies on
the interesting case (a variant that crashed) is no report.
"""

from deltamut.report.gallery import changed_images, gallery_plot
from deltamut.report.heatmap import disagreement_heatmap, disagreement_matrix
from deltamut.report.killmatrix import kill_matrix_plot
from deltamut.report.latency import latency_frame, latency_plot
from deltamut.report.stage import plots_stage

__all__ = ["changed_images", "disagreement_heatmap", "disagreement_matrix", "gallery_plot", "kill_matrix_plot",
           "latency_frame", "latency_plot", "plots_stage"]
