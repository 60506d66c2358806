"""Datasets as they ship: one reader per dataset in the ``READERS`` registry (``datasets.readers``).

Importing the package registers every reader module listed here (a new reader: one module and one line).
"""

from datasets import celebdf, dfdc, ffpp  # noqa: F401  (register "celebdf", "dfdc", "ffpp" and "dfd")
from datasets.readers import READERS, FolderLabels, LayoutProblem, ReaderOptions, VideoEntry

__all__ = ["READERS", "FolderLabels", "LayoutProblem", "ReaderOptions", "VideoEntry"]
