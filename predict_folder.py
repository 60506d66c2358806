"""Folder predictor: every .mp4 in a folder -> submission CSV (``filename,label``), scored when labels exist.

    python predict_folder.py --test-dir DIR [DIR ...] --output OUT.csv [--preset default|winner] ...

``python predict_folder.py --help`` lists every option; the code is :mod:`prediction.cli`.
"""

from __future__ import annotations

import sys

from prediction.cli import main

if __name__ == "__main__":
    sys.exit(main())
