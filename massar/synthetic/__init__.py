"""Synthetic Massar exports of a whole province (Tiznit-like), with optional known defects.

``generate_province(outdir, schools=None, seed=2024, year="2023/2024", defects=False,
workers=None)`` writes one folder per submitting school in the real Massar layouts, the other
datasets as XLSX/CSV with the labels of schemas/datasets.py, schools.csv, leavers.csv, the
partner funds' requests with their expected answers and, with ``defects=True``,
ground_truth.csv. See docs/data-dictionary.md.
"""

from massar.synthetic.generate import GenerationSummary, generate_province

__all__ = ["GenerationSummary", "generate_province"]
