# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.filter.run_id import FilterModule, run_id

SHAPE = re.compile(r"^oomguard-\d{8}T\d{6}Z-\d{4}$")


@pytest.mark.parametrize("empty", [None, ""])
def test_now(empty):
    assert SHAPE.match(run_id(empty))


def test_for_a_given_time():
    made = run_id("2026-11-29T02:00:00Z")
    assert SHAPE.match(made) and made.startswith("oomguard-20261129T020000Z-")
    assert run_id("2026-11-29T03:00:00+01:00").startswith("oomguard-20261129T020000Z-")


@pytest.mark.parametrize("bad", ["yesterday", 17, [1]])
def test_refuses_what_is_no_time(bad):
    with pytest.raises(AnsibleFilterError, match="the input must be empty"):
        run_id(bad)


def test_registered():
    assert FilterModule().filters() == {"run_id": run_id}
