# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import glob
import json
import os
import stat

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import OomguardError, ProcParseError
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import (
    BaselineError,
    gather_slabinfo_facts,
    load_baseline,
)
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree, slabinfo_text

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
LIVE = sorted(glob.glob(os.path.join(FIXTURES, "proc", "live-*")))
T0 = datetime.datetime(2026, 11, 28, 2, 0, 0, tzinfo=datetime.timezone.utc)
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

CACHES = [
    {"name": "dentry", "num_slabs": 100, "objperslab": 21, "objsize": 192},
    {"name": "kmalloc-64", "num_slabs": 50, "objperslab": 64, "objsize": 64},
    {"name": "task_struct", "num_slabs": 10, "objperslab": 3, "objsize": 2656, "pagesperslab": 2},
]


def tree_with(root, caches, boot_id="b1", **kwargs):
    tree = build_proc_tree(root, [{"pid": 1}], slabinfo=slabinfo_text(caches, **kwargs),
                           meminfo={"Slab": 9000, "SReclaimable": 5000, "SUnreclaim": 4000, "MemTotal": 100000})
    os.makedirs(os.path.join(tree, "sys", "kernel", "random"), exist_ok=True)
    with open(os.path.join(tree, "sys", "kernel", "random", "boot_id"), "w") as handle:
        handle.write(boot_id + "\n")
    return tree


def test_facts_contract_and_order(tmp_path):
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), top=2)
    assert facts["available"] is True and facts["reason"] is None
    assert facts["version"] == "2.1" and facts["statistics"] is False
    assert facts["cache_count"] == 3
    assert [c["name"] for c in facts["caches"]] == ["dentry", "kmalloc-64"]
    assert facts["total_kb"] == (100 + 50 + 20) * PAGE_KB
    assert facts["active_kb"] == sum(n * s // 1024 for n, s in ((2100, 192), (3200, 64), (30, 2656)))
    assert facts["meminfo"] == {"slab_kb": 9000, "sreclaimable_kb": 5000, "sunreclaim_kb": 4000, "mem_total_kb": 100000}
    assert "growth" not in facts
    json.dumps(facts)


def test_top_zero_returns_all(tmp_path):
    assert len(gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), top=0)["caches"]) == 3


def test_statistics_variant(tmp_path):
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES, statistics=True))
    assert facts["statistics"] is True and facts["cache_count"] == 3


def test_live_capture():
    facts = gather_slabinfo_facts(LIVE[0], top=5)
    assert facts["available"] and facts["cache_count"] > 50
    assert facts["caches"][0]["size_kb"] >= facts["caches"][-1]["size_kb"]
    assert facts["meminfo"]["sunreclaim_kb"] > 0


def test_absent_file_says_why(tmp_path):
    tree = build_proc_tree(str(tmp_path / "p"), [{"pid": 1}])
    facts = gather_slabinfo_facts(tree, baseline="store", baseline_path=str(tmp_path / "b.json"))
    assert facts["available"] is False
    assert "CONFIG_SLUB_DEBUG" in facts["reason"]
    assert facts["meminfo"]["sunreclaim_kb"] == 40000
    assert not os.path.exists(str(tmp_path / "b.json"))


def test_other_read_error_reason(tmp_path):
    tree = build_proc_tree(str(tmp_path / "p"), [{"pid": 1}])
    os.mkdir(os.path.join(tree, "slabinfo"))
    facts = gather_slabinfo_facts(tree)
    assert facts["available"] is False and "could not be read: Is a directory" in facts["reason"]


def test_unreadable_without_root_says_become(tmp_path, monkeypatch):
    # Root reads a 0400 file anyway, so make open() fail the way it does for a normal user.
    tree = tree_with(str(tmp_path / "p"), CACHES)
    from ansible_collections.oomguard.fleet.plugins.module_utils import slabinfo as mod

    def denied(path):
        if path.endswith("slabinfo"):
            raise PermissionError(13, "Permission denied", path)
        with open(path) as handle:
            return handle.read()

    monkeypatch.setattr(mod, "read_text", denied)
    facts = gather_slabinfo_facts(tree)
    assert facts["available"] is False
    assert facts["reason"].endswith("readable by root only; run the task with become: true")


def test_malformed_file_raises_with_line(tmp_path):
    tree = build_proc_tree(str(tmp_path / "p"), [{"pid": 1}], slabinfo="slabinfo - version: 2.1\n# x\nbroken 1 2\n")
    with pytest.raises(ProcParseError) as err:
        gather_slabinfo_facts(tree)
    assert "slabinfo line 3" in str(err.value)


def test_bad_baseline_mode(tmp_path):
    with pytest.raises(OomguardError):
        gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="guess")


def test_growth_first_run_then_after_growth(tmp_path):
    path = str(tmp_path / "state" / "oomguard" / "slabinfo-baseline.json")
    tree = tree_with(str(tmp_path / "p"), CACHES)
    first = gather_slabinfo_facts(tree, baseline="store", baseline_path=path, now=T0)
    growth = first["growth"]
    assert growth["baseline"] is False and growth["hours"] is None and growth["caches"] == []
    assert growth["message"].startswith("no baseline yet at %s" % path)
    assert growth["stored"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.listdir(os.path.dirname(path)) == ["slabinfo-baseline.json"]  # no temp file left

    grown = [dict(CACHES[0]), dict(CACHES[1], num_slabs=50 + 1200), CACHES[2], {"name": "new_cache", "num_slabs": 3}]
    tree = tree_with(str(tmp_path / "p2"), grown)
    second = gather_slabinfo_facts(tree, baseline="compare", baseline_path=path, now=T0 + datetime.timedelta(hours=12))
    growth = second["growth"]
    assert growth["baseline"] is True and growth["baseline_at"] == "2026-11-28T02:00:00Z"
    assert growth["hours"] == 12.0
    assert growth["caches"] == [
        {"name": "kmalloc-64", "size_kb": 1250 * PAGE_KB, "baseline_kb": 50 * PAGE_KB, "growth_kb": 1200 * PAGE_KB,
         "growth_kb_per_hour": round(1200 * PAGE_KB / 12.0, 1)},
        {"name": "new_cache", "size_kb": 3 * PAGE_KB, "baseline_kb": 0, "growth_kb": 3 * PAGE_KB,
         "growth_kb_per_hour": round(3 * PAGE_KB / 12.0, 1)},
    ]
    assert growth["stored"] is False
    # compare never rewrites the baseline
    assert load_baseline(path)[0]["stored_at"] == T0


def test_growth_top_limits_rows(tmp_path):
    path = str(tmp_path / "b.json")
    gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path, now=T0)
    grown = [dict(c, num_slabs=c["num_slabs"] * 2) for c in CACHES]
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p2"), grown), top=1, baseline="compare", baseline_path=path,
                                  now=T0 + datetime.timedelta(hours=1))
    assert [c["name"] for c in facts["growth"]["caches"]] == ["dentry"]


def test_store_in_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "d" / "b.json")
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path,
                                  check_mode=True)
    assert facts["growth"]["stored"] is False and "check mode" in facts["growth"]["message"]
    assert not os.path.exists(str(tmp_path / "d"))


def test_store_replaces_and_reports_reboot(tmp_path):
    path = str(tmp_path / "b.json")
    gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES, boot_id="boot-a"), baseline="store", baseline_path=path, now=T0)
    later = T0 + datetime.timedelta(hours=2)
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p2"), CACHES, boot_id="boot-b"), baseline="store",
                                  baseline_path=path, now=later)
    assert "rebooted" in facts["growth"]["message"] and facts["growth"]["stored"]
    assert facts["growth"]["caches"] == []
    assert load_baseline(path)[0]["stored_at"] == later


def test_zero_hours_gives_no_rate(tmp_path):
    path = str(tmp_path / "b.json")
    gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path, now=T0)
    grown = [dict(CACHES[0], num_slabs=500)]
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p2"), grown), baseline="compare", baseline_path=path, now=T0)
    assert facts["growth"]["caches"][0]["growth_kb_per_hour"] is None


@pytest.mark.parametrize("content", ["{not json", json.dumps({"caches": {}}), json.dumps([1, 2]),
                                     json.dumps({"stored_at": "yesterday", "caches": {}}),
                                     json.dumps({"stored_at": "2026-11-28T02:00:00Z", "caches": {"a": "x"}})])
def test_corrupt_baseline_is_reported_and_replaced(tmp_path, content):
    path = str(tmp_path / "b.json")
    with open(path, "w") as handle:
        handle.write(content)
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path, now=T0)
    assert facts["growth"]["baseline"] is False
    assert "not a valid baseline" in facts["growth"]["message"]
    assert load_baseline(path)[0] is not None


def test_unreadable_baseline(tmp_path):
    path = str(tmp_path / "dir-not-file")
    os.mkdir(path)
    baseline, message = load_baseline(path)
    assert baseline is None and "unreadable" in message


def test_store_failure_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = str(blocker / "sub" / "b.json")
    with pytest.raises(BaselineError) as err:
        gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path, now=T0)
    assert str(err.value).startswith("Failed to store the slab baseline at %s: " % path)
    assert "become: true" in str(err.value)


def test_failed_rename_leaves_no_temp_file(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    target = directory / "b.json"
    target.mkdir()  # rename onto a directory fails after the temp file was written
    (target / "keep").write_text("x")
    with pytest.raises(BaselineError):
        gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=str(target), now=T0)
    assert sorted(os.listdir(str(directory))) == ["b.json"]


def test_baseline_in_a_sticky_shared_directory_keeps_the_sticky_bit(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    path = str(shared / "b.json")
    facts = gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=path, now=T0)
    assert facts["growth"]["stored"] is True
    assert stat.S_IMODE(os.stat(str(shared)).st_mode) == 0o1777 and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_baseline_directory_of_mode_0755_is_not_chmodded(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    os.chmod(str(directory), 0o755)
    gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=str(directory / "b.json"), now=T0)
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o755


def test_baseline_symlink_is_refused_and_its_target_untouched(tmp_path):
    (tmp_path / "precious").write_text("keep me")
    os.symlink(str(tmp_path / "precious"), str(tmp_path / "b.json"))
    with pytest.raises(BaselineError, match=r"Failed to store the slab baseline at .*b.json is a symlink"):
        gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=str(tmp_path / "b.json"), now=T0)
    assert os.path.islink(str(tmp_path / "b.json")) and (tmp_path / "precious").read_text() == "keep me"


def test_baseline_in_a_world_writable_directory_is_refused(tmp_path):
    directory = tmp_path / "open"
    directory.mkdir()
    os.chmod(str(directory), 0o777)
    with pytest.raises(BaselineError, match="writable by group and others"):
        gather_slabinfo_facts(tree_with(str(tmp_path / "p"), CACHES), baseline="store", baseline_path=str(directory / "b.json"), now=T0)
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o777 and os.listdir(str(directory)) == []
