"""The run report: one self-contained HTML page (figures embedded, also written as PNGs)
in ``<output_root>/report/``; ``build.write_or_warn`` writes it at the end of a local run.
"""
