# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which systemd drop-in decides a unit's OOMScoreAdjust= (private to oomguard.fleet).

systemd reads the drop-ins of a unit from every unit directory (``/etc``, ``/run``,
``/usr/lib``, ...), for the unit's name, its template, its dash prefixes and its type, and
applies them in file-name order across all directories (a file name in a higher-priority
directory hides the same name in lower ones); the last ``OOMScoreAdjust=`` wins, after the
unit file's own. ``predict`` reads those directories (what check mode and the first look can
know); ``parse_show`` and ``setting_file`` read what ``systemctl show`` reports after a
``daemon-reload`` (what systemd itself decided).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.oomguard.fleet.plugins.module_utils.pycompat import open_text

# The system manager's unit search path, highest priority first (systemd.unit(5), "Unit File Load Path").
SEARCH_DIRS = (
    "/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient", "/run/systemd/generator.early",
    "/etc/systemd/system", "/etc/systemd/system.attached", "/run/systemd/system", "/run/systemd/system.attached",
    "/run/systemd/generator", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
    "/run/systemd/generator.late",
)
# The section that carries OOMScoreAdjust= for each unit type with an exec context (systemd.exec(5)).
SECTIONS = {"service": "Service", "socket": "Socket", "mount": "Mount", "swap": "Swap"}
_ASSIGNMENT = re.compile(r"^\s*OOMScoreAdjust\s*=\s*(.*?)\s*$")
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def dropin_dir_names(unit):
    """The ``<name>.d`` directories systemd reads for ``unit``, most specific first: the unit,
    its template (``foo@.service``), its dash prefixes (``foo-.service`` for ``foo-bar.service``)
    and its type (``service``)."""
    prefix, dot, unit_type = unit.rpartition(".")
    names = [unit]
    if "@" in prefix:
        template = prefix.split("@", 1)[0] + "@." + unit_type
        if template != unit:
            names.append(template)
        prefix = prefix.split("@", 1)[0]
    parts = prefix.split("-")
    for end in range(len(parts) - 1, 0, -1):
        names.append("-".join(parts[:end]) + "-." + unit_type)
    names.append(unit_type)
    return [name + ".d" for name in names]


def oom_setting(text, unit):
    """The last OOMScoreAdjust= of ``text`` in the section of the unit's type: an int, "" for an empty
    assignment (resets it to the default), or None when the file does not set it."""
    section = SECTIONS.get(unit.rpartition(".")[2])
    current, found = None, None
    for line in (text or "").splitlines():
        if line.lstrip().startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            current = header.group(1).strip()
            continue
        match = _ASSIGNMENT.match(line)
        if match and current == section:
            value = match.group(1)
            try:
                found = int(value) if value else ""
            except ValueError:
                continue  # systemd ignores an invalid value, with a warning in its log
    return found


def read_file(path):
    try:
        with open_text(path, errors="replace") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def dropin_files(root, unit):
    """The drop-ins systemd would read for ``unit`` under ``root``, as {file name: path}: the same
    name in a higher-priority place hides the others. systemd applies them sorted by file name."""
    by_name = {}
    for directory in SEARCH_DIRS:
        for sub in dropin_dir_names(unit):
            full = os.path.join(root, directory.lstrip("/"), sub)
            try:
                names = os.listdir(full)
            except OSError:
                continue
            for name in names:
                if name.endswith(".conf") and not name.startswith(".") and name not in by_name:
                    path = os.path.join(full, name)
                    if os.path.realpath(path) != "/dev/null" and os.path.isfile(path):
                        by_name[name] = path
    return by_name


def predict(root, unit, path, value):
    """Whether the drop-in ``path`` (as seen under ``root``) setting ``value`` would decide the
    unit's OOMScoreAdjust=.

    Returns None when it would (or when what wins sets the same value), else {file, value}: the
    drop-in that sets another value after it, or the file of the same name in a higher-priority
    directory that hides it (value None when that one does not set it).
    """
    by_name = dropin_files(root, unit)
    name = os.path.basename(path)
    hidden_by = by_name.get(name) if by_name.get(name) not in (None, path) else None
    if hidden_by is None:
        by_name[name] = path
    winner, setting = hidden_by, None
    for candidate_name in sorted(by_name):
        candidate = by_name[candidate_name]
        found = value if candidate == path else oom_setting(read_file(candidate), unit)
        if found is not None:
            winner, setting = candidate, found
    if winner == path or (winner is not None and setting == value):
        return None
    return {"file": winner, "value": setting}


def parse_show(text):
    """``systemctl show -p A -p B`` output (``A=...`` lines) -> dict."""
    props = {}
    for line in (text or "").splitlines():
        key, sep, val = line.partition("=")
        if sep:
            props[key] = val
    return props


def setting_file(props, unit, read=read_file):
    """The file that sets the OOMScoreAdjust= systemd reports: the last drop-in in DropInPaths that
    sets it, else the unit file (FragmentPath), else None."""
    for path in reversed((props.get("DropInPaths") or "").split()):
        if oom_setting(read(path), unit) is not None:
            return path
    return props.get("FragmentPath") or None


def describe_value(value):
    return "unset (the default)" if value in ("", None) else "%s" % value
