# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a reader sees in the HTML report, as plain data: cards, chart bars, table rows, problems."""

from __future__ import annotations

from html.parser import HTMLParser


class HtmlDigest(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards = {}
        self.bars = []
        self.rows = []
        self.problems = []
        self.scripts = []
        self.external = []
        self._stack = []
        self._card = None
        self._cell = None
        self._row = None
        self._in_problems = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._cell is not None and tag in ("li", "div", "ul"):
            self._cell += " "
        for key in ("src", "href"):
            if key in attrs:
                self.external.append((tag, attrs[key]))
        if tag == "div" and "data-level" in attrs:
            self._card = [attrs["data-level"], ""]
        elif tag == "g" and "data-host" in attrs:
            self.bars.append({"host": attrs["data-host"]})
        elif tag == "rect" and self.bars and "width" not in self.bars[-1]:
            self.bars[-1]["width"] = float(attrs["width"])
            self.bars[-1]["fill"] = attrs["fill"]
        elif tag == "tr" and "data-host" in attrs:
            self._row = {"host": attrs["data-host"], "level": attrs["data-level"], "cells": []}
            if "hidden" in attrs:   # beyond the first page of rows
                self._row["hidden"] = True
        elif tag == "td" and self._row is not None:
            self._cell = ""
        elif tag == "section" and attrs.get("id") == "problems":
            self._in_problems = True
        elif tag == "li" and self._in_problems:
            self.problems.append("")
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "div" and self._card is not None:
            self.cards[self._card[0]] = int(self._card[1])
            self._card = None
        elif tag == "td" and self._cell is not None:
            self._row["cells"].append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "section":
            self._in_problems = False
        elif tag == "script":
            self._in_script = False
        elif tag in ("li", "div") and self._cell is not None:
            self._cell += " "

    def handle_data(self, data):
        if self._card is not None and self._card[1] == "" and data.strip().isdigit():
            self._card[1] = data.strip()
        if self._cell is not None:
            self._cell += data
        if self._in_problems and self.problems:
            self.problems[-1] += data
        if self._in_script:
            self.scripts[-1] += data

    def digest(self):
        return {"cards": self.cards, "bars": self.bars, "rows": self.rows, "problems": self.problems}


def digest_html(text):
    parser = HtmlDigest()
    parser.feed(text)
    parser.close()
    return parser
