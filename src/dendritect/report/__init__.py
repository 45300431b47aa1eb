"""The report of a results folder: ``report.html``, figures for papers, and a movie.

>>> from dendritect.report import write_report
>>> write_report("results/")            # doctest: +SKIP
PosixPath('results/report.html')
"""

from dendritect.report.html import write_report
from dendritect.report.mesh import crack_mesh
from dendritect.report.movie import write_movie
from dendritect.report.results import Results, load_results

__all__ = ["Results", "crack_mesh", "load_results", "write_movie", "write_report"]
