# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After a panic: would a record survive (PANIC001) and does the host reboot (PANIC002)?
Facts from fixture procfs/sysfs/root trees, then the rules."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import (
    default_sys_path,
    gather_oom_facts,
    journald_storage,
)
from ansible_collections.oomguard.fleet.plugins.modules import oom_score_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as handle:
        handle.write(text)


def host(tmp_path, panic=None, backend=None, crash=None, pstore_mounted=False, journal_dir=False, journald=None,
         panic_on_oom=0):
    """A host tree: <tmp>/proc, <tmp>/sys (always, with sys/kernel), <tmp>/var/log; returns proc_path."""
    proc = vendor_tree(tmp_path / "proc", vm={"panic_on_oom": panic_on_oom})
    if panic is not None:
        write(tmp_path / "proc" / "sys" / "kernel" / "panic", "%d\n" % panic)
        write(tmp_path / "proc" / "sys" / "kernel" / "panic_on_oops", "0\n")
    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    if backend is not None:
        write(tmp_path / "sys" / "module" / "pstore" / "parameters" / "backend", backend + "\n")
    if crash is not None:
        write(tmp_path / "sys" / "kernel" / "kexec_crash_loaded", "%d\n" % crash)
        write(tmp_path / "sys" / "kernel" / "kexec_crash_size", "268435456\n")
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"]
    if pstore_mounted:
        lines.append("30 22 0:26 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:9 - pstore pstore rw\n")
    write(os.path.join(proc, "self", "mountinfo"), "".join(lines))
    (tmp_path / "var" / "log").mkdir(parents=True)
    if journal_dir:
        (tmp_path / "var" / "log" / "journal").mkdir()
    if journald is not None:
        write(tmp_path / "etc" / "systemd" / "journald.conf", journald)
    return proc


def facts_of(tmp_path, **kwargs):
    proc = host(tmp_path, **kwargs)
    return {"oom": gather_oom_facts(proc, root=str(tmp_path))}


def rule(verdict, rule_id):
    return [(f["severity"], f["message"]) for f in verdict["findings"] if f["id"] == rule_id]


def skipped(verdict, rule_id):
    return [s["reason"] for s in verdict["skipped"] if s["id"] == rule_id]


# ------------------------------------------------------------------ facts


def test_facts_of_a_host_that_keeps_a_record_and_reboots(tmp_path):
    panic = facts_of(tmp_path, panic=10, backend="ramoops", crash=1, pstore_mounted=True, journal_dir=True)["oom"]["panic"]
    assert panic == {
        "timeout_s": 10, "on_oops": 0, "sys_path": str(tmp_path / "sys"),
        "pstore": {"backend": "ramoops", "mounted": True},
        "crash_kernel": {"loaded": True, "size_bytes": 268435456},
        "journal": {"persistent": True, "storage": "auto", "path": str(tmp_path / "var" / "log" / "journal")},
    }


def test_facts_of_a_host_that_keeps_nothing(tmp_path):
    panic = facts_of(tmp_path, panic=0, backend="(null)", crash=0)["oom"]["panic"]
    assert panic["pstore"] == {"backend": None, "mounted": False}
    assert panic["crash_kernel"] == {"loaded": False, "size_bytes": 268435456}
    assert panic["journal"]["persistent"] is False and panic["timeout_s"] == 0


def test_missing_files_are_normal(tmp_path):
    # No pstore module, a kernel without kexec, no kernel.panic file: nothing fails, the figures say so.
    panic = facts_of(tmp_path)["oom"]["panic"]
    assert panic["timeout_s"] is None and panic["on_oops"] is None
    assert panic["pstore"]["backend"] is None and panic["crash_kernel"] == {"loaded": False, "size_bytes": None}


def test_no_sysfs_and_no_root_mean_unknown_not_absent(tmp_path):
    panic = gather_oom_facts(vendor_tree(tmp_path / "proc"))["panic"]
    assert panic["sys_path"] is None
    assert panic["pstore"] == {"backend": None, "mounted": None}
    assert panic["crash_kernel"] == {"loaded": None, "size_bytes": None}
    assert panic["journal"] == {"persistent": None, "storage": None, "path": None}


def test_unreadable_mountinfo_leaves_mounted_unknown(tmp_path):
    proc = host(tmp_path, backend="efi_pstore")
    os.remove(os.path.join(proc, "self", "mountinfo"))
    assert gather_oom_facts(proc)["panic"]["pstore"] == {"backend": "efi_pstore", "mounted": None}


@pytest.mark.parametrize("proc, expected", [("/proc", "/sys"), ("/host/proc", "/host/sys"), ("/host/proc/", "/host/sys")])
def test_sys_path_defaults_to_the_sysfs_beside_the_procfs(proc, expected):
    assert default_sys_path(proc) == expected


def test_explicit_sys_path_wins(tmp_path):
    proc = host(tmp_path, backend="erst")
    os.rename(str(tmp_path / "sys"), str(tmp_path / "elsewhere"))
    assert gather_oom_facts(proc)["panic"]["sys_path"] is None
    assert gather_oom_facts(proc, sys_path=str(tmp_path / "elsewhere"))["panic"]["pstore"]["backend"] == "erst"


@pytest.mark.parametrize("files, storage", [
    ({}, None),
    ({"etc/systemd/journald.conf": "[Journal]\n#Storage=auto\n"}, None),
    ({"etc/systemd/journald.conf": "[Journal]\nStorage=volatile\n"}, "volatile"),
    ({"etc/systemd/journald.conf": "[Other]\nStorage=none\n"}, None),
    ({"etc/systemd/journald.conf": "[Journal]\nStorage=volatile\n",
      "usr/lib/systemd/journald.conf.d/10-a.conf": "[Journal]\nStorage=persistent\n"}, "persistent"),
    ({"usr/lib/systemd/journald.conf.d/50-x.conf": "[Journal]\nStorage=persistent\n",
      "etc/systemd/journald.conf.d/50-x.conf": "[Journal]\nStorage=none\n"}, "none"),  # /etc overrides the same name
    ({"run/systemd/journald.conf.d/10-a.conf": "[Journal]\nStorage=none\n",
      "etc/systemd/journald.conf.d/20-b.conf": "[Journal]\n Storage = Persistent \n"}, "persistent"),
])
def test_journald_storage_follows_the_drop_in_order(tmp_path, files, storage):
    for name, text in files.items():
        write(tmp_path / name, text)
    assert journald_storage(str(tmp_path)) == storage


@pytest.mark.parametrize("journal_dir, journald, persistent", [
    (True, None, True), (False, None, False), (False, "[Journal]\nStorage=persistent\n", True),
    (True, "[Journal]\nStorage=volatile\n", False), (True, "[Journal]\nStorage=none\n", False),
])
def test_journal_persistence(tmp_path, journal_dir, journald, persistent):
    assert facts_of(tmp_path, journal_dir=journal_dir, journald=journald)["oom"]["panic"]["journal"]["persistent"] is persistent


def test_module_takes_sys_path_and_reads_the_journal_under_evidence_root(tmp_path):
    proc = host(tmp_path, panic=0, backend="ramoops", crash=0, journal_dir=True)
    os.rename(str(tmp_path / "sys"), str(tmp_path / "sysfs"))
    failed, result = run_module(oom_score_facts.main, {"proc_path": proc, "sys_path": str(tmp_path / "sysfs"),
                                                       "evidence_root": str(tmp_path)})
    panic = result["ansible_facts"]["oom"]["panic"]
    assert not failed and panic["pstore"]["backend"] == "ramoops" and panic["journal"]["persistent"] is True
    assert panic["timeout_s"] == 0


# ------------------------------------------------------------------ PANIC001


def test_panic001_medium_when_nothing_survives(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=10, backend="(null)", crash=0))
    [(severity, message)] = rule(verdict, "PANIC001")
    assert severity == "medium" and verdict["level"] == "medium"
    assert message.startswith("A panic here would leave no record of itself: no pstore backend registered "
                              "(%s/module/pstore/parameters/backend) and no crash kernel loaded" % (tmp_path / "sys"))
    assert "nor does journald keep a persistent journal (Storage=auto, no %s)" % (tmp_path / "var" / "log" / "journal") in message
    assert "load a pstore backend (ramoops, efi_pstore, erst) or set up kdump" in message


def test_panic001_low_when_only_the_journal_keeps_the_lead_up(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=10, crash=0, journal_dir=True))
    [(severity, message)] = rule(verdict, "PANIC001")
    assert severity == "low" and "the persistent journal keeps only the lead-up (OOM kills, the warning)" in message


def test_panic001_medium_when_the_journal_is_unknown(tmp_path):
    proc = host(tmp_path, panic=10, crash=0)
    [(severity, message)] = rule(ex.assess({"oom": gather_oom_facts(proc)}), "PANIC001")  # no root: journal unknown
    assert severity == "medium" and "journal" not in message.split("log file")[1]


@pytest.mark.parametrize("kwargs", [{"backend": "ramoops"}, {"backend": "efi_pstore"}, {"crash": 1},
                                    {"backend": "erst", "crash": 1}])
def test_panic001_quiet_with_a_pstore_backend_or_a_crash_kernel(tmp_path, kwargs):
    verdict = ex.assess(facts_of(tmp_path, panic=10, **kwargs))
    assert rule(verdict, "PANIC001") == [] and skipped(verdict, "PANIC001") == [] and verdict["level"] == "ok"


def test_panic001_skipped_without_sysfs(tmp_path):
    verdict = ex.assess({"oom": gather_oom_facts(vendor_tree(tmp_path / "proc"))})
    assert rule(verdict, "PANIC001") == [] and verdict["level"] == "ok"
    assert skipped(verdict, "PANIC001") == [
        "sysfs was not found beside the procfs (sys_path): pstore and the crash kernel are unknown"]


def test_panic001_switched_off(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=10), options={"require_panic_record": "false"})
    assert rule(verdict, "PANIC001") == [] and skipped(verdict, "PANIC001") == ["switched off (require_panic_record: false)"]


# ------------------------------------------------------------------ PANIC002


def test_panic002_medium_when_the_host_stays_hung(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=0, backend="ramoops"))
    assert rule(verdict, "PANIC002") == [("medium", (
        "kernel.panic is 0: after a panic the host stays hung until someone restarts it; set kernel.panic to the seconds "
        "to wait before the reboot (for example 10)"))]
    assert verdict["figures"]["panic_timeout_s"] == 0


def test_panic002_high_when_every_oom_panics(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=0, backend="ramoops", panic_on_oom=1))
    [(severity, message)] = rule(verdict, "PANIC002")
    assert severity == "high" and "with vm.panic_on_oom 1 every OOM is a panic" in message
    assert ("VM001", "high") in [(f["id"], f["severity"]) for f in verdict["findings"]]


@pytest.mark.parametrize("timeout, options, expected", [
    (10, {}, []), (-1, {}, []), (300, {}, []),
    (301, {}, [("low", "kernel.panic is 301: after a panic the host waits 301 s before it reboots (flagged above 300 s)")]),
    (3600, {"panic_reboot_max_s": 0}, []),
    (20, {"panic_reboot_max_s": 15},
     [("low", "kernel.panic is 20: after a panic the host waits 20 s before it reboots (flagged above 15 s)")]),
])
def test_panic002_timeouts(tmp_path, timeout, options, expected):
    assert rule(ex.assess(facts_of(tmp_path, panic=timeout, backend="ramoops"), options=options), "PANIC002") == expected


def test_panic002_skipped_without_kernel_panic(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, backend="ramoops"))
    assert skipped(verdict, "PANIC002") == ["kernel.panic is not in this host's procfs (sys/kernel/panic)"]


def test_panic002_switched_off_from_a_command_line_string(tmp_path):
    verdict = ex.assess(facts_of(tmp_path, panic=0, backend="ramoops"), options={"require_panic_reboot": "no"})
    assert rule(verdict, "PANIC002") == [] and skipped(verdict, "PANIC002") == ["switched off (require_panic_reboot: false)"]


def test_facts_from_an_older_module_skip_both(tmp_path):
    oom = gather_oom_facts(vendor_tree(tmp_path / "proc"))
    del oom["panic"]
    verdict = ex.assess({"oom": oom})
    assert verdict["level"] == "ok" and verdict["figures"]["panic_timeout_s"] is None
    assert skipped(verdict, "PANIC001") == skipped(verdict, "PANIC002") == [
        "no panic facts (gathered by an older oom_score_facts)"]


@pytest.mark.parametrize("options, text", [
    ({"require_panic_record": "maybe"}, "exposure option require_panic_record must be true or false, got 'maybe'"),
    ({"require_panic_reboot": 2.5}, "exposure option require_panic_reboot must be true or false, got 2.5"),
    ({"panic_reboot_max_s": float("nan")}, "exposure option panic_reboot_max_s must be a finite number >= 0, got nan"),
    ({"panic_reboot_max_s": -1}, "exposure option panic_reboot_max_s must be a finite number >= 0, got -1"),
])
def test_bad_panic_options(options, text):
    with pytest.raises(ex.ExposureError) as info:
        ex.normalize_options(options)
    assert str(info.value) == text


def test_rule_ids_are_reserved_for_custom_rules():
    with pytest.raises(ex.ExposureError) as info:
        ex.validate_custom_rules([{"id": "PANIC001", "severity": "low", "query": "oom", "message": "m"}])
    assert "already used by a built-in rule" in str(info.value)
