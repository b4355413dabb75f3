# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The assess role through real ansible-playbook on localhost, judging fixture procfs trees."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import slabinfo_text, vendor_tree

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(VENV_BIN, "ansible-playbook")
GIB = 1024 * 1024
SEED = os.path.join(TOP, "tests", "unit", "fixtures", "evidence", "vendor-vmcore-dmesg.txt")

PLAY = """
- name: Assess
  hosts: all
  gather_facts: false
  roles:
    - role: oomguard.fleet.assess
  post_tasks:
    - name: Save the verdict for the test
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.exposure.json"
        content: "{{ oomguard_exposure | to_json }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false

- name: Keep every host's verdict, stopped hosts too
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Save each verdict
      ansible.builtin.copy:
        dest: "{{ out_dir }}/all-{{ item }}.exposure.json"
        content: "{{ hostvars[item].oomguard_exposure | default(none) | to_json }}"
        mode: "0600"
      loop: "{{ groups['all'] }}"
      check_mode: false
"""


def ansible_env():
    return base_env({"ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"})


class Run:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.out = tmp_path / "out"
        self.out.mkdir()
        (tmp_path / "play.yml").write_text(PLAY)

    def inventory(self, extra_hosts="", web01_proc=None):
        path = self.tmp / "inventory.yml"
        own = "      oomguard_assess_proc_path: %s\n" % web01_proc if web01_proc else ""
        path.write_text(
            "all:\n  hosts:\n    web01:\n      ansible_connection: local\n"
            "      ansible_python_interpreter: %s\n%s%s" % (sys.executable, own, extra_hosts))
        return path

    def local_host(self, name, proc_path):
        """Inventory lines for a local host with its own proc_path (a host var, as -e would win)."""
        return ("    %s:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
                "      oomguard_assess_proc_path: %s\n" % (name, sys.executable, proc_path))

    def play(self, variables, extra_hosts="", check=False, web01_proc=None):
        argv = [PLAYBOOK_BIN, "-i", str(self.inventory(extra_hosts, web01_proc)), str(self.tmp / "play.yml"),
                "-e", json.dumps(dict(variables, out_dir=str(self.out)))]
        if check:
            argv.append("--check")
        return subprocess.run(argv, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)

    def all_exposures(self):
        """Every inventory host's oomguard_exposure as the play after the role saw it (None when unset)."""
        out = {}
        for name in os.listdir(str(self.out)):
            if name.startswith("all-"):
                with open(str(self.out / name)) as handle:
                    out[name[len("all-"):-len(".exposure.json")]] = json.load(handle)
        return out

    def exposure(self, host="web01"):
        with open(str(self.out / ("%s.exposure.json" % host))) as handle:
            return json.load(handle)


def base_vars(tmp_path, proc_root, **extra):
    evidence_root = tmp_path / "root"
    evidence_root.mkdir(exist_ok=True)
    variables = {
        "oomguard_assess_proc_path": str(proc_root),
        "oomguard_assess_evidence_root": str(evidence_root),
        "oomguard_assess_slab_baseline_path": str(tmp_path / "state" / "slab-baseline.json"),
    }
    variables.update(extra)
    return variables


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def finding_ids(exposure):
    return [(f["id"], f["severity"]) for f in exposure["findings"]]


def test_vendor_host_ok_then_6gib_java_critical_with_result_file(tmp_path):
    run = Run(tmp_path)
    vendor = vendor_tree(tmp_path / "vendor")
    ok(run.play(base_vars(tmp_path, vendor)))
    exposure = run.exposure()
    assert exposure["level"] == "ok", exposure
    assert exposure["figures"]["unkillable_count"] == 2

    java = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000, "unit": "app.service"}
    crash = tmp_path / "root" / "var" / "crash" / "127.0.0.1-2026-11-28-03:04:05"
    crash.mkdir(parents=True)
    with open(SEED) as handle:
        (crash / "vmcore-dmesg.txt").write_text(handle.read())
    results = tmp_path / "results"
    result = ok(run.play(base_vars(tmp_path, vendor_tree(tmp_path / "java", extra=[java]),
                                   oomguard_assess_results_dir=str(results), oomguard_run_id="oomguard-test-1")))
    exposure = run.exposure()
    assert exposure["level"] == "critical"
    assert ("OOM001", "critical") in finding_ids(exposure)
    assert ("OOM002", "high") in finding_ids(exposure)
    assert ("HIST001", "critical") in finding_ids(exposure)
    assert [f["pid"] for f in exposure["flagged"]] == [4242]
    # the summary line and the findings are in the play output
    assert "web01: critical (" in result.stdout
    assert "OOM002: java (pid 4242, 6.0 GiB RSS, unit app.service)" in result.stdout
    with open(str(results / "web01.json")) as handle:
        record = json.load(handle)
    assert record["schema"] == 1 and record["host"] == "web01" and record["run_id"] == "oomguard-test-1"
    assert record["exposure"]["level"] == "critical"
    assert record["written_at"].endswith("Z")
    assert oct(os.stat(str(results / "web01.json")).st_mode & 0o777) == "0o640"


def test_no_baseline_then_cache_grew_shows_slab002(tmp_path):
    run = Run(tmp_path)
    small = slabinfo_text([{"name": "kmalloc-256", "num_slabs": 100}, {"name": "dentry", "num_slabs": 50}])
    grown = slabinfo_text([{"name": "kmalloc-256", "num_slabs": 100 + 5 * 2560}, {"name": "dentry", "num_slabs": 50}])
    proc = vendor_tree(tmp_path / "proc", slabinfo=small)
    ok(run.play(base_vars(tmp_path, proc)))
    first = run.exposure()
    assert [f for f in first["findings"] if f["id"] == "SLAB002"] == []
    slab_skip = [s for s in first["skipped"] if s["id"] == "SLAB002"]
    assert slab_skip and slab_skip[0]["reason"].startswith("no slab baseline yet"), first["skipped"]
    baseline_path = tmp_path / "state" / "slab-baseline.json"
    assert os.path.exists(str(baseline_path))
    # An hour passes: the growth rate is per hour, and two plays a second apart have none.
    baseline = json.loads(baseline_path.read_text())
    stored = datetime.datetime.strptime(baseline["stored_at"], "%Y-%m-%dT%H:%M:%SZ")
    baseline["stored_at"] = (stored - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    baseline_path.write_text(json.dumps(baseline))

    (tmp_path / "proc" / "slabinfo").write_text(grown)
    ok(run.play(base_vars(tmp_path, proc)))
    second = run.exposure()
    slab002 = [f for f in second["findings"] if f["id"] == "SLAB002"]
    assert len(slab002) == 1 and slab002[0]["severity"] == "medium"
    assert "kmalloc-256 grew by" in slab002[0]["message"]
    assert second["level"] == "medium"


def test_check_mode_stores_no_baseline_but_writes_the_result_file(tmp_path):
    run = Run(tmp_path)
    proc = vendor_tree(tmp_path / "proc", slabinfo=slabinfo_text([{"name": "dentry"}]))
    results = tmp_path / "results"
    ok(run.play(base_vars(tmp_path, proc, oomguard_assess_results_dir=str(results)), check=True))
    assert run.exposure()["level"] == "ok"
    assert not os.path.exists(str(tmp_path / "state" / "slab-baseline.json"))
    # the result file records what was read: written in check mode too
    with open(str(results / "web01.json")) as handle:
        assert json.load(handle)["exposure"]["level"] == "ok"


@pytest.mark.parametrize("fail_on, fails", [("critical", True), ("high", True), ("never", False), ("none", False)])
def test_fail_on_gate(tmp_path, fail_on, fails):
    run = Run(tmp_path)
    java = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000}
    calm = run.local_host("calm01", vendor_tree(tmp_path / "calm"))
    variables = base_vars(tmp_path, "per host", oomguard_assess_fail_on=fail_on)
    del variables["oomguard_assess_proc_path"]  # a host variable each: -e would win over them
    result = run.play(variables, extra_hosts=calm, web01_proc=vendor_tree(tmp_path / "p", extra=[java]))
    assert (result.returncode != 0) is fails, result.stdout[-2000:]
    assert ("fatal: [web01]" in result.stdout) is fails
    assert "fatal: [calm01]" not in result.stdout
    if fails:
        assert "web01 is critical, at or above oomguard_assess_fail_on=%s (OOM001, OOM002)" % fail_on in result.stdout
    # The stopped host keeps its verdict as a fact, for the plays and roles after it.
    kept = run.all_exposures()
    assert kept["web01"]["level"] == "critical" and kept["calm01"]["level"] == "ok"


def test_gated_host_is_critical_in_the_audit_report_not_unknown(tmp_path):
    java = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000}
    run = Run(tmp_path)
    inventory = run.inventory(run.local_host("calm01", vendor_tree(tmp_path / "calm")),
                              web01_proc=vendor_tree(tmp_path / "p", extra=[java]))
    report_dir = tmp_path / "report"
    variables = base_vars(tmp_path, "per host", oomguard_assess_fail_on="critical", oomguard_report_dir=str(report_dir))
    del variables["oomguard_assess_proc_path"]
    proc = subprocess.run([PLAYBOOK_BIN, "-i", str(inventory), os.path.join(TOP, "playbooks", "audit.yml"),
                           "-e", json.dumps(variables)], env=ansible_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode != 0 and "fatal: [web01]" in proc.stdout, proc.stdout[-3000:]
    with open(str(report_dir / "oomguard-report.json")) as handle:
        report = json.load(handle)
    levels = dict((h["host"], h["level"]) for h in report["hosts"])
    assert levels == {"web01": "critical", "calm01": "ok"}
    assert report["totals"]["by_level"]["critical"] == 1 and report["totals"]["by_level"]["unknown"] == 0


def test_fail_on_below_level_passes(tmp_path):
    run = Run(tmp_path)
    ok(run.play(base_vars(tmp_path, vendor_tree(tmp_path / "p"), oomguard_assess_fail_on="low")))


def test_bad_fail_on_is_rejected_by_argument_spec(tmp_path):
    run = Run(tmp_path)
    result = run.play(base_vars(tmp_path, vendor_tree(tmp_path / "p"), oomguard_assess_fail_on="bad"))
    assert result.returncode != 0
    assert "oomguard_assess_fail_on" in result.stdout and "bad" in result.stdout


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_and_failed_hosts_are_unknown_and_fail_gates(tmp_path):
    run = Run(tmp_path)
    lost = ("    lost01:\n      ansible_host: 127.0.0.1\n      ansible_port: %d\n      ansible_user: nobody\n"
            "      ansible_connection: ssh\n      ansible_ssh_timeout: 5\n" % _closed_port())
    good = run.local_host("good01", vendor_tree(tmp_path / "p"))
    broken = run.local_host("broken01", tmp_path / "no-such-proc")
    results = tmp_path / "results"
    variables = base_vars(tmp_path, "unused", oomguard_assess_results_dir=str(results), oomguard_assess_fail_on="critical")
    del variables["oomguard_assess_proc_path"]
    result = run.play(variables, extra_hosts=lost + good + broken)
    assert result.returncode != 0
    assert run.exposure("good01")["level"] == "ok"
    with open(str(results / "lost01.json")) as handle:
        lost_exposure = json.load(handle)["exposure"]
    assert lost_exposure["level"] == "unknown"
    assert lost_exposure["reason"].startswith("host unreachable:")
    with open(str(results / "broken01.json")) as handle:
        broken_exposure = json.load(handle)["exposure"]
    assert broken_exposure["level"] == "unknown"
    assert broken_exposure["reason"].startswith("fact gathering failed:")
    assert "no-such-proc" in broken_exposure["reason"]
    # one run id shared by every host of the play
    run_ids = set()
    for name in ("good01", "lost01", "broken01"):
        with open(str(results / ("%s.json" % name))) as handle:
            run_ids.add(json.load(handle)["run_id"])
    assert len(run_ids) == 1 and run_ids.pop().startswith("oomguard-")
    # In Ansible's own terms: the lost host is unreachable, the unreadable one failed (exit 4 outranks 2).
    assert result.returncode == 4, result.stdout[-3000:]
    assert "fatal: [lost01]: UNREACHABLE!" in result.stdout and "lost01: unknown (host unreachable" in result.stdout
    assert "fatal: [broken01]: FAILED!" in result.stdout and "broken01: unknown (fact gathering failed" in result.stdout
    assert re.search(r"lost01 +: ok=\d+ +changed=\d+ +unreachable=1 +failed=0 ", result.stdout), result.stdout[-1500:]
    assert re.search(r"broken01 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=1 ", result.stdout), result.stdout[-1500:]
    assert re.search(r"good01 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=0 ", result.stdout), result.stdout[-1500:]
    # Such a task sets no fact; the report reads the registered result (test_audit_exit_codes_and_report_of_lost_hosts).
    kept = run.all_exposures()
    assert kept["lost01"] is None and kept["broken01"] is None and kept["good01"]["level"] == "ok"


def test_bad_custom_rule_stops_with_the_rule_name(tmp_path):
    run = Run(tmp_path)
    rules = [{"id": "SITE9", "severity": "high", "query": "oom.processes[?", "message": "m"}]
    result = run.play(base_vars(tmp_path, vendor_tree(tmp_path / "p"), oomguard_assess_custom_rules=rules))
    assert result.returncode != 0
    assert "oomguard.fleet.exposure: custom rule SITE9: invalid JMESPath query" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_custom_rule_and_thresholds_from_role_variables(tmp_path):
    run = Run(tmp_path)
    rules = [{"id": "SITE1", "severity": "low", "query": "oom.processes[?name == 'sshd'].pid",
              "message": "sshd pids {result} on {host}"}]
    ok(run.play(base_vars(tmp_path, vendor_tree(tmp_path / "p"), oomguard_assess_custom_rules=rules,
                          oomguard_assess_allowlist=["systemd-udevd"])))
    exposure = run.exposure()
    assert ("SITE1", "low") in finding_ids(exposure)
    assert [f["message"] for f in exposure["findings"] if f["id"] == "SITE1"] == ["sshd pids 1799 on web01"]
    assert [f["name"] for f in exposure["flagged"]] == ["sshd"]


def audit(tmp_path, inventory, variables, cwd=None, env=None):
    return subprocess.run([PLAYBOOK_BIN, "-i", str(inventory), os.path.join(TOP, "playbooks", "audit.yml"),
                           "-e", json.dumps(variables)], env=env or ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False, cwd=cwd)


def lost_host(name="lost01"):
    return ("    %s:\n      ansible_host: 127.0.0.1\n      ansible_port: %d\n      ansible_user: nobody\n"
            "      ansible_connection: ssh\n      ansible_ssh_timeout: 5\n" % (name, _closed_port()))


def recap(stdout, host):
    found = re.search(r"^%s +: ok=(\d+) +changed=\d+ +unreachable=(\d+) +failed=(\d+) " % re.escape(host), stdout, re.M)
    assert found, stdout[-2000:]
    return dict(zip(("ok", "unreachable", "failed"), (int(v) for v in found.groups())))


@pytest.mark.parametrize("hosts, fail_on, code", [
    (("good",), "none", 0),                       # every host judged, no gate
    (("good", "broken"), "none", 2),              # facts not read: failed
    (("good", "lost"), "none", 4),                # unreachable
    (("good", "lost", "broken"), "none", 4),      # 4 outranks 2
    (("good", "lost"), "high", 4),                # the report gate fails localhost too; still 4
    (("lost",), "none", 4),                       # every audited host lost: the report is still written
    (("good", "broken"), "low", 2),               # the report gate on an unknown host
])
def test_audit_exit_codes_and_report_of_lost_hosts(tmp_path, hosts, fail_on, code):
    run = Run(tmp_path)
    lines = {"good": run.local_host("good01", vendor_tree(tmp_path / "p")), "lost": lost_host(),
             "broken": run.local_host("broken01", tmp_path / "no-such-proc")}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n" + "".join(lines[h] for h in hosts))
    report_dir = tmp_path / "report"
    results = tmp_path / "results"
    variables = base_vars(tmp_path, "unused", oomguard_report_dir=str(report_dir), oomguard_report_fail_on=fail_on,
                          oomguard_assess_results_dir=str(results))
    del variables["oomguard_assess_proc_path"]
    proc = audit(tmp_path, inventory, variables)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    # One run id for every audited host (set once, on an audited host, never skipped on localhost).
    run_ids = set(json.loads((results / name).read_text())["run_id"] for name in os.listdir(str(results)))
    assert len(run_ids) == 1 and run_ids.pop().startswith("oomguard-"), run_ids
    assert "localhost.json" not in os.listdir(str(results))
    report = json.loads((report_dir / "oomguard-report.json").read_text())
    levels = dict((h["host"], (h["level"], h["reason"])) for h in report["hosts"])
    if "good" in hosts:
        assert levels["good01"] == ("ok", None) and recap(proc.stdout, "good01")["failed"] == 0
    if "lost" in hosts:
        assert levels["lost01"][0] == "unknown" and levels["lost01"][1].startswith("host unreachable: "), levels
        assert recap(proc.stdout, "lost01")["unreachable"] == 1 and recap(proc.stdout, "lost01")["failed"] == 0
    if "broken" in hosts:
        assert levels["broken01"][0] == "unknown" and levels["broken01"][1].startswith("fact gathering failed: "), levels
        assert "no-such-proc" in levels["broken01"][1]
        assert recap(proc.stdout, "broken01")["failed"] == 1
    gate_tripped = fail_on != "none"
    assert recap(proc.stdout, "localhost") == {"ok": recap(proc.stdout, "localhost")["ok"], "unreachable": 0,
                                               "failed": int(gate_tripped)}


@pytest.mark.parametrize("pwd", [None, "/nonexistent/stale-pwd"])
def test_audit_report_goes_beside_the_inventory_whatever_the_shell(tmp_path, pwd):
    run = Run(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    inventory = site / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n" + run.local_host("good01", vendor_tree(tmp_path / "p")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = ansible_env()
    env.pop("PWD", None)
    if pwd:
        env["PWD"] = pwd
    variables = base_vars(tmp_path, "unused")
    del variables["oomguard_assess_proc_path"]
    proc = audit(tmp_path, inventory, variables, cwd=str(elsewhere), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((site / "oomguard-report" / "oomguard-report.json").read_text())
    assert [h["host"] for h in report["hosts"]] == ["good01"]
    assert os.listdir(str(elsewhere)) == []
    assert not os.path.exists("/oomguard-report") and not os.path.exists("/nonexistent")
    # An inventory directory: the report goes beside it, not into it (where the next run would read it as inventory).
    inv_dir = tmp_path / "inv.d"
    inv_dir.mkdir()
    inventory.rename(inv_dir / "hosts.yml")
    proc = audit(tmp_path, inv_dir, variables, cwd=str(elsewhere), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (tmp_path / "oomguard-report" / "oomguard-report.json").exists()
    assert os.listdir(str(inv_dir)) == ["hosts.yml"]


def test_audit_without_an_inventory_file_asks_for_the_report_directory(tmp_path):
    env = ansible_env()
    env.pop("PWD", None)
    proc = subprocess.run([PLAYBOOK_BIN, "-i", "localhost,", os.path.join(TOP, "playbooks", "audit.yml"), "-c", "local",
                           "-e", json.dumps(base_vars(tmp_path, vendor_tree(tmp_path / "p"),
                                                      ansible_python_interpreter=sys.executable))],
                          env=env, capture_output=True, text=True, timeout=300, check=False, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "No report directory: dest (role: oomguard_report_dir) is empty. Set oomguard_report_dir" in proc.stdout
    assert not os.path.exists(str(tmp_path / "oomguard-report")) and not os.path.exists("/oomguard-report")
