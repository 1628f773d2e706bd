"""Reports: the run's JSON (redacted in one place) is the source; Markdown and HTML (with charts) are views of
it; ``compare`` reads two of them into a before/after table."""

from harness.report.compare import Comparison, compare, compare_files, write_comparison
from harness.report.html import render_html
from harness.report.write import redacted, render_markdown, write_report

__all__ = ["Comparison", "compare", "compare_files", "redacted", "render_html", "render_markdown",
           "write_comparison", "write_report"]
