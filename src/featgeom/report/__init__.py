"""Self-contained HTML reports (figures embedded as base64 PNG, no network)."""

from featgeom.report.html import figure_tag, html_table, write_html

__all__ = ["figure_tag", "html_table", "write_html"]
