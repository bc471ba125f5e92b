"""Every markdown page the pipeline writes (table.md, efficiency.md, claims.md, ...) also as an HTML page beside it.

The markdown stays the committed, diffable form; the HTML is what `snakemake --report` shows: the report viewer
offers a .md file only as a download, but displays an .html file inline. The HTML is rendered from the same text
by Python-Markdown (its `tables` extension reads the pipe tables tabulate writes), so the two never disagree.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import markdown

from snnlib.atomic import atomic_write_text

# Readable wide tables inside the report's iframe: sticky header, zebra rows, numbers in tabular figures.
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; margin: 1.2em; color: #222; }
h1 { font-size: 1.35em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; white-space: nowrap; }
th { background: #eef1f5; position: sticky; top: 0; }
tr:nth-child(even) td { background: #f8f9fb; }
code { background: #f1f1f1; padding: 0 3px; }
p { max-width: 75em; line-height: 1.45; }
"""


def markdown_to_html(text: str, title: str | None = None) -> str:
    """A standalone HTML document of the markdown `text`; its title is `title`, else the first heading."""
    if title is None:
        heading = re.search(r"^#+\s+(.+)$", text, re.M)
        title = heading[1] if heading else "snnlib"
    body = _converter().convert(text)
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _converter() -> markdown.Markdown:
    """Markdown with pipe tables and without raw HTML: a "<" in a cell (a method's label, "p < 0.05") is text."""
    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def html_path(md_path: Path) -> Path:
    return Path(md_path).with_suffix(".html")


def write_markdown_page(path: Path, text: str) -> None:
    """`text` to `path` (.md) and its HTML rendering to the .html beside it, each written atomically."""
    path = Path(path)
    if path.suffix != ".md":
        raise ValueError(f"a markdown page must end in .md, got {path}")
    atomic_write_text(path, text)
    atomic_write_text(html_path(path), markdown_to_html(text))
