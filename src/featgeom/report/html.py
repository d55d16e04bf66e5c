"""Minimal building blocks for self-contained HTML reports."""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%}
.findings li{margin:0.3em 0}
pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.85em}
.scroll{overflow-x:auto}
figure{margin:1em 0}
figcaption{font-size:0.85em;color:#555;margin-top:0.3em}
"""


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; floats printed with 4 significant digits."""
    def cell(v: Any) -> str:
        return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_tag(fig: Any, alt: str, save_as: Path | None = None) -> str:
    """An <img> with the matplotlib figure embedded as base64 PNG (also saved to ``save_as``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    if save_as is not None:
        save_as.write_bytes(buf.getvalue())
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure_block(fig: Any, path: Path, alt: str, caption: str = "") -> str:
    """A <figure>: the matplotlib figure embedded as by :func:`figure_tag`, with ``caption`` below;
    also saved as ``path`` + '.png' and + '.svg' (``path`` is a stem: dots in it are kept)."""
    tag = figure_tag(fig, alt, save_as=path.with_name(f"{path.name}.png"))
    fig.savefig(path.with_name(f"{path.name}.svg"))
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{tag}{text}</figure>"


def write_html(path: Path, title: str, body: str) -> Path:
    """Write a complete HTML page atomically (temp file + rename)."""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(page)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
    os.replace(tmp, path)
    return path
