# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which stdout callbacks the action plugins print their own lines to."""

from __future__ import annotations

import pytest
from ansible import constants as C

from ansible_collections.oomguard.fleet.plugins.plugin_utils import stdout_callback


@pytest.mark.parametrize("callback, human", [
    ("default", True), ("ansible.builtin.default", True), ("minimal", True), ("community.general.yaml", True),
    ("json", False), ("ansible.posix.json", False), ("ansible.posix.jsonl", False), ("jsonl", False),
])
def test_human_callback(monkeypatch, callback, human):
    monkeypatch.setattr(C, "DEFAULT_STDOUT_CALLBACK", callback)
    assert stdout_callback.human_callback() is human
