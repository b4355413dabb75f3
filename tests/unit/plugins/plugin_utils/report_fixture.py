# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds the report of the fixture fleet in tests/unit/fixtures/report/ (shared by the report tests)."""

from __future__ import annotations

import json
import os

from ansible_collections.oomguard.fleet.plugins.plugin_utils.report import (
    build_report,
    parse_time,
    read_results_dir,
    records_from_facts,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "report")
RESULTS_DIR = os.path.join(FIXTURES, "results")


def load_play():
    with open(os.path.join(FIXTURES, "play.json"), encoding="utf-8") as handle:
        return json.load(handle)


def fixture_report():
    play = load_play()
    live = records_from_facts(play["hosts"], play["facts"], set(play["lost"]), play["now"], play["run_id"])
    stored, problems = read_results_dir(RESULTS_DIR)
    return build_report(live + stored, expected_hosts=play["hosts"], generated_at=parse_time(play["generated_at"]),
                        run_id=play["run_id"], problems=problems)
