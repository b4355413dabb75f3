# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the fleet report in the asked formats and write the files atomically."""

from __future__ import annotations

import os

from ansible_collections.oomguard.fleet.plugins.plugin_utils.report import ReportError, atomic_write
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_formats import (
    EXTENSIONS,
    FORMATS,
    render_csv,
    render_json,
    render_junit,
    render_markdown,
    render_prometheus,
)
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_html import render_html


def render(report, fmt, junit_fail_on="high", unknown_fails=True):
    """The report as text in one format (see ``FORMATS``)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "junit":
        return render_junit(report, fail_on=junit_fail_on, unknown_fails=unknown_fails)
    if fmt == "prometheus":
        return render_prometheus(report)
    raise ReportError("unknown report format %r; choose from %s" % (fmt, ", ".join(FORMATS)))


def output_paths(dest, formats, basename="oomguard-report", prometheus_path=None):
    """``{format: path}``; the Prometheus file may live elsewhere (node_exporter's directory)."""
    paths = {}
    for fmt in formats:
        if fmt == "prometheus" and prometheus_path:
            paths[fmt] = prometheus_path
        else:
            paths[fmt] = os.path.join(dest, "%s.%s" % (basename, EXTENSIONS[fmt]))
    return paths


def write_report(report, paths, junit_fail_on="high", unknown_fails=True, check_mode=False):
    """Render every format and write it; return ``{format: path}`` of files that changed."""
    changed = {}
    for fmt, path in paths.items():
        text = render(report, fmt, junit_fail_on=junit_fail_on, unknown_fails=unknown_fails)
        try:
            with open(path, "r", encoding="utf-8", newline="") as handle:
                if handle.read() == text:
                    continue
        except (OSError, UnicodeDecodeError):
            pass
        changed[fmt] = path
        if check_mode:
            continue
        try:
            atomic_write(path, text)
        except ReportError as exc:
            raise ReportError("Failed to write the %s report to %s: %s" % (fmt, path, exc)) from None
    return changed
