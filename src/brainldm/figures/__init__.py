"""The paper's Figures 3-9, each a picture (PNG and SVG) and the table behind it.

Every ``figure_N`` function takes finished results (a reconstruction folder,
evaluation scores, :class:`~brainldm.encoding.EncodingAnalyses`) and returns
``(figure, table)``: a matplotlib figure and a pandas DataFrame of exactly what
is drawn. :func:`save_figure_files` writes both. Nothing is recomputed.
"""

from brainldm.figures._brain import VoxelSpace, figure_6, figure_7, figure_8, figure_9
from brainldm.figures._files import FIGURE_FORMATS, save_figure_files
from brainldm.figures._images import figure_3, figure_4
from brainldm.figures._identification import figure_5, significance_marks

__all__ = [
    "figure_3",
    "figure_4",
    "figure_5",
    "figure_6",
    "figure_7",
    "figure_8",
    "figure_9",
    "VoxelSpace",
    "significance_marks",
    "save_figure_files",
    "FIGURE_FORMATS",
]
