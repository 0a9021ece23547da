"""Figures (matplotlib, PNG). Modules here draw from result tables and never compute results.

One module per analysis: ``regional``, ``dsa``, ``psa``.
"""

import matplotlib

matplotlib.use("Agg")  # files only; no screen on servers and CI
