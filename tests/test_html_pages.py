"""The HTML twin of every markdown page: the same headings, paragraphs and table cells as the markdown it renders."""
from html.parser import HTMLParser

import pandas as pd
import pytest

from snnlib.html_pages import markdown_to_html, write_markdown_page


class _Cells(HTMLParser):
    """The text of every <th>/<td> per table row, the headings, and the <title>."""

    def __init__(self):
        super().__init__()
        self.rows, self.headings, self.title, self._in = [], [], "", None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("th", "td", "h1", "h2", "title"):
            self._in, self._text = tag, ""

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if tag != self._in:
            return
        if tag in ("th", "td"):
            self.rows[-1].append(self._text.strip())
        elif tag == "title":
            self.title = self._text
        else:
            self.headings.append(self._text)
        self._in = None


def test_a_tabulate_table_renders_cell_for_cell():
    frame = pd.DataFrame({"": ["SNN, QCFS", "SNN, SRP tau=4 <b>"], "T=1": ["93.40 [91.7, 94.8]", ""],
                          "T=8": ["99.40 [98.7, 99.7]", "not run"]})
    text = f"# run: title\n\nSome *text* & more.\n\n## mnist_lenet\n\n{frame.to_markdown(index=False)}\n"
    page = _Cells()
    page.feed(markdown_to_html(text))
    assert page.title == "run: title" and page.headings == ["run: title", "mnist_lenet"]
    assert page.rows[0] == ["", "T=1", "T=8"]
    assert page.rows[1:] == frame.values.tolist()  # every cell, in order; "<b>" stays text, not markup


def test_write_markdown_page_writes_both_and_refuses_other_suffixes(tmp_path):
    write_markdown_page(tmp_path / "table.md", "# t\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert (tmp_path / "table.md").read_text().startswith("# t")
    assert "<td>1</td>" in (tmp_path / "table.html").read_text()
    with pytest.raises(ValueError, match="must end in .md"):
        write_markdown_page(tmp_path / "table.txt", "x")
