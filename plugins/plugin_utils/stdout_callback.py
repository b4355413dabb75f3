# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the action plugins may print lines of their own: not when the stdout callback
writes a machine-readable document (json, jsonl), which extra lines would corrupt."""

from __future__ import annotations

from ansible import constants as C

MACHINE_CALLBACKS = ("json", "jsonl")


def human_callback():
    return str(C.DEFAULT_STDOUT_CALLBACK).rsplit(".", 1)[-1] not in MACHINE_CALLBACKS
