# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The panic lab: the seed's "Out of memory and no killable processes" panic on a real kernel
(a Debian guest under qemu, tests/harness/vm.py), then the collection preventing it.

The steps share one guest and run in order; a step whose predecessor failed is skipped.

a. audit.yml rates the guest critical (OOM001, OOM002: ballast at -1000).
b. The spike with nothing changed: the console shows both panic lines, the guest reboots
   (panic=5), and the next audit finds the panic in pstore (HIST001).
c. remediate.yml in reset mode (snapshot against the ECS double, snapshot gate on) sets
   ballast to 0 at runtime and in a drop-in; systemctl show agrees.
d. The same spike again: the kernel kills ballast, no panic, SSH answers; the next audit
   shows the kill (HIST002) and the host is no longer critical. Started again, ballast
   gets 0 from the drop-in.
e. rollback.yml puts -1000 back and the drop-in away; a second rollback changes nothing.
f. A remediation killed (SIGKILL to ansible-playbook) after its first journal write rolls
   back cleanly: -1000 written back at runtime.
g. With the user's own override.conf at -1000 (what `systemctl edit` writes): either the
   reset is effective (systemctl show reads 0) or the host fails naming override.conf.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.oomguard.fleet.tests.harness import vm
from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY_ID = 'LTAI5tPanicLabKey0001'
SECRET = 'PanicLab-SECRET-must-never-show-up'
REGION = 'cn-hangzhou'
INSTANCE = 'i-lab01'
JOURNAL = '/var/lib/oomguard/journal.jsonl'
DROPIN_DIR = '/etc/systemd/system/ballast.service.d'
OVERRIDE = DROPIN_DIR + '/override.conf'
RUN_C = 'oomguard-20261202T120000Z-0003'
RUN_F = 'oomguard-20261202T120000Z-0006'
RUN_G = 'oomguard-20261202T120000Z-0007'
KILLED_BALLAST = re.compile(r'Out of memory: Killed process \d+ \(ballast\)')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='the lab builds a disk image and boots qemu: needs root'),
    pytest.mark.skipif(bool(vm.missing_tools()), reason='lab tools missing: %s (scripts/bootstrap.sh test installs them)'
                       % ', '.join(vm.missing_tools())),
]


class Lab:
    """The guest, the ECS double and the record of which steps passed."""

    def __init__(self, guest, ecs, workdir):
        self.guest = guest
        self.ecs = ecs
        self.workdir = workdir
        self.passed = set()
        self.figures = {}
        self.runs = 0

    def inventory(self):
        path = os.path.join(self.workdir, 'inventory.ini')
        extra = ('instance_id=%s region=%s oomguard_snapshot_provider=alicloud oomguard_snapshot_endpoint_url=%s '
                 'oomguard_snapshot_poll_interval=0.2 oomguard_snapshot_progress_interval=1 '
                 'oomguard_snapshot_retry_delay=0.05' % (INSTANCE, REGION, self.ecs.endpoint))
        with open(path, 'w') as handle:
            handle.write(self.guest.inventory_text(extra=extra))
        return path

    def env(self):
        return base_env({'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': SECRET,
                         'ANSIBLE_DEPRECATION_WARNINGS': 'false', 'ANSIBLE_PIPELINING': 'true',
                         'ANSIBLE_SSH_RETRIES': '2', 'ANSIBLE_TIMEOUT': '30'})

    def argv(self, name, *extra):
        # Reports go to the test's directory, never beside the playbooks.
        return [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', self.inventory(), os.path.join(REPO, 'playbooks', name),
                '-e', 'oomguard_report_dir=%s' % os.path.join(self.workdir, 'report-%d' % self.runs)] + list(extra)

    def playbook(self, name, *extra, timeout=600):
        self.runs += 1
        started = time.monotonic()
        proc = subprocess.run(self.argv(name, *extra), capture_output=True, text=True, env=self.env(), cwd=self.workdir,
                              check=False, timeout=timeout)
        self.figures.setdefault(name, []).append(round(time.monotonic() - started, 1))
        assert SECRET not in proc.stdout + proc.stderr
        return proc

    def audit(self):
        """audit.yml over SSH; the host's result file (oomguard_exposure)."""
        self.runs += 1
        results = os.path.join(self.workdir, 'results-%d' % self.runs)
        proc = self.playbook('audit.yml', '-e', 'oomguard_assess_results_dir=%s' % results)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        with open(os.path.join(results, 'lab.json')) as handle:
            return json.load(handle), proc.stdout

    def ssh(self, command, **kwargs):
        return self.guest.ssh(command, **kwargs)

    def ballast_pid(self):
        return int(self.ssh('systemctl show -p MainPID --value ballast').strip())

    def adj(self, pid):
        return int(self.ssh('cat /proc/%d/oom_score_adj' % pid).strip())

    def our_dropins(self):
        """The drop-ins of ballast that the collection wrote (they start with its header)."""
        return self.ssh("grep -l '^# Managed by oomguard.fleet' %s/*.conf 2>/dev/null || true" % DROPIN_DIR).split()

    def configured(self):
        return int(self.ssh('systemctl show -p OOMScoreAdjust --value ballast').strip())

    def restart_ballast(self):
        """(Re)start ballast and wait until it holds its memory."""
        self.ssh('rm -f %s; systemctl restart ballast; for i in $(seq 1 120); do '
                 'journalctl -b -u ballast -n 1 -o cat | grep -q holding && exit 0; sleep 0.5; done; exit 1'
                 % vm.SPIKE_TRIGGER, timeout=120)
        return self.ballast_pid()

    def spike(self, patterns, figure):
        """Trigger ballast's growth; wait for the console lines. Returns (console offset, start, text)."""
        offset = self.guest.console_size()
        started = time.monotonic()
        self.guest.spike()
        text = self.guest.wait_for_console(patterns, offset, timeout=300)
        self.figures[figure] = round(time.monotonic() - started, 1)
        return offset, started, text

    def require(self, *steps):
        missing = [s for s in steps if s not in self.passed]
        if missing:
            pytest.skip('needs step(s) %s, which did not pass' % ', '.join(missing))


def exposure(result):
    """(level, finding ids) of a result file, whatever its exact nesting."""
    record = result.get('oomguard_exposure', result.get('exposure', result))
    return record['level'], {f['id'] for f in record.get('findings', [])}


def findings(result, rule):
    record = result.get('oomguard_exposure', result.get('exposure', result))
    return [f for f in record.get('findings', []) if f['id'] == rule]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    image, build_seconds = vm.build_image()
    workdir = str(tmp_path_factory.mktemp('panic-lab'))
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=0.5) as ecs:
        ecs.add_instance(INSTANCE, REGION, data_disks=1)
        with vm.Guest.booted(image=image) as guest:
            state = guest.state
            lab = Lab(guest, ecs, workdir)
            lab.figures.update(build_seconds=round(build_seconds, 1), boot_seconds=round(guest.boot_seconds, 1),
                               accel=guest.accel)
            yield lab
            with open(os.path.join(workdir, 'console.log'), 'w') as handle:
                handle.write(guest.console())
            with open(os.path.join(workdir, 'figures.json'), 'w') as handle:
                json.dump(lab.figures, handle, sort_keys=True)
            print('panic lab figures: %s' % json.dumps(lab.figures, sort_keys=True))
            keep = os.environ.get('OOMGUARD_LAB_KEEP')  # a directory for the console log, pstore record, figures
            if keep:
                os.makedirs(keep, exist_ok=True)
                for name in ('console.log', 'pstore.txt', 'figures.json'):
                    if os.path.exists(os.path.join(workdir, name)):
                        shutil.copy(os.path.join(workdir, name), keep)
    assert not os.path.exists(state), 'the guest left %s behind' % state


def test_a_audit_rates_the_seed_host_critical(lab):
    pid = lab.ballast_pid()
    assert lab.adj(pid) == -1000
    sshd = lab.ssh("for p in $(pgrep -x sshd) $(pgrep -x systemd-udevd); do cat /proc/$p/oom_score_adj; done").split()
    assert '-1000' in sshd, 'sshd/systemd-udevd at -1000 as Debian packages them'
    result, out = lab.audit()
    level, ids = exposure(result)
    assert level == 'critical', out[-3000:]
    assert {'OOM001', 'OOM002'} <= ids, ids
    assert 'ballast' in json.dumps(findings(result, 'OOM002'))
    # ramoops registered as pstore's backend and kernel.panic 5: a panic leaves a record and reboots.
    assert lab.ssh('cat /sys/module/pstore/parameters/backend').strip() == 'ramoops'
    assert not ids & {'PANIC001', 'PANIC002'}, out[-3000:]
    lab.passed.add('a')


def test_a2_no_panic_record_and_no_reboot_are_flagged(lab):
    lab.require('a')
    lab.ssh('rmmod ramoops && sysctl -qw kernel.panic=0')
    try:
        result, out = lab.audit()
        level, ids = exposure(result)
        assert {'PANIC001', 'PANIC002'} <= ids, out[-3000:]
        assert 'no pstore backend' in findings(result, 'PANIC001')[0]['message']
        assert 'kernel.panic is 0' in findings(result, 'PANIC002')[0]['message']
    finally:
        lab.ssh('modprobe ramoops && sysctl -qw kernel.panic=%d' % vm.PANIC_REBOOT_SECONDS)
    assert lab.ssh('cat /sys/module/pstore/parameters/backend').strip() == 'ramoops'
    lab.passed.add('a2')


def test_b_spike_panics_then_pstore_has_it(lab):
    lab.require('a')
    guest = lab.guest
    offset, started, text = lab.spike([re.escape(line) for line in vm.PANIC_LINES], 'spike_to_panic_seconds')
    panic_at = offset + len(text.encode('utf-8', 'replace'))
    guest.wait_for_console([r'Linux version'], panic_at - 200, timeout=120)
    guest.wait_for_ssh()
    lab.figures['panic_reboot_cycle_seconds'] = round(time.monotonic() - started, 1)
    assert 'Kernel panic' not in guest.console(offset).split('Linux version')[-1], 'the second boot panicked too'

    records = lab.ssh('grep -l "System is deadlocked on memory" /sys/fs/pstore/* || true').split()
    assert records, 'no pstore record of the panic:\n' + lab.ssh('ls -la /sys/fs/pstore; dmesg | grep -i -E "ramoops|pstore"')
    result, out = lab.audit()
    level, ids = exposure(result)
    assert level == 'critical' and 'HIST001' in ids, out[-3000:]
    assert '/sys/fs/pstore' in json.dumps(findings(result, 'HIST001')) or 'pstore' in json.dumps(findings(result, 'HIST001'))
    with open(os.path.join(lab.workdir, 'pstore.txt'), 'w') as handle:
        handle.write(lab.ssh('cat %s' % records[0]))
    # What an operator does once the crash is read and archived: clear pstore, so that
    # the next audit judges the host as it is now, not by an incident already handled.
    lab.ssh('rm -f /sys/fs/pstore/*')
    lab.passed.add('b')


def test_c_reset_with_snapshot_gate(lab):
    lab.require('a')
    pid = lab.ballast_pid()
    assert lab.adj(pid) == -1000
    proc = lab.playbook('remediate.yml', '-e', 'oomguard_remediate_mode=reset', '-e', 'oomguard_run_id=' + RUN_C)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    snaps = [s for s in lab.ecs.snapshots.values() if s['Tags'].get('oomguard:run-id') == RUN_C]
    assert len(snaps) == 2, lab.ecs.snapshots  # system disk + one data disk, before the change
    assert lab.adj(pid) == 0
    dropins = lab.our_dropins()
    assert len(dropins) == 1, dropins
    assert 'OOMScoreAdjust=0' in lab.ssh('cat %s' % dropins[0])
    assert lab.configured() == 0
    lab.ssh('systemctl daemon-reload')
    assert lab.configured() == 0
    lab.passed.add('c')


def test_d_same_spike_kills_ballast_host_survives(lab):
    lab.require('c')
    guest = lab.guest
    offset, dummy, text = lab.spike([KILLED_BALLAST.pattern], 'spike_to_kill_seconds')
    guest.wait_for_ssh(timeout=120)
    time.sleep(2)
    text = guest.console(offset)
    assert 'Kernel panic' not in text and vm.PANIC_LINES[0] not in text, text[-3000:]
    assert 'Linux version' not in text, 'the guest rebooted'
    assert lab.ssh('systemctl is-active ballast', check=False).strip() != 'active'
    result, out = lab.audit()
    level, ids = exposure(result)
    assert 'HIST002' in ids and 'HIST001' not in ids, out[-3000:]
    assert level != 'critical', out[-3000:]
    assert 'ballast' in json.dumps(findings(result, 'HIST002'))
    # Started again, ballast gets its value from the drop-in.
    pid = lab.restart_ballast()
    assert lab.adj(pid) == 0 and lab.configured() == 0
    lab.passed.add('d')


def test_e_rollback_restores_then_changes_nothing(lab):
    lab.require('c')
    proc = lab.playbook('rollback.yml', '-e', 'oomguard_rollback_run_id=' + RUN_C, '-e', 'oomguard_rollback_restart=true')
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert re.search(r'lab\s+: ok=\d+\s+changed=[1-9]', proc.stdout), proc.stdout[-3000:]
    assert lab.our_dropins() == []
    assert lab.configured() == -1000
    assert lab.adj(lab.ballast_pid()) == -1000
    again = lab.playbook('rollback.yml', '-e', 'oomguard_rollback_run_id=' + RUN_C)
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]
    assert re.search(r'lab\s+: ok=\d+\s+changed=0', again.stdout), again.stdout[-3000:]
    assert 'already rolled back' in again.stdout
    lab.passed.add('e')


def test_f_run_killed_after_first_journal_write_rolls_back(lab):
    lab.require('e')
    pid = lab.ballast_pid()
    assert lab.adj(pid) == -1000
    before = int(lab.ssh('cat %s 2>/dev/null | wc -l' % JOURNAL).strip())
    proc = subprocess.Popen(lab.argv('remediate.yml', '-e', 'oomguard_remediate_mode=reset', '-e', 'oomguard_run_id=' + RUN_F),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=lab.env(), cwd=lab.workdir,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            lines = int(lab.ssh('cat %s 2>/dev/null | wc -l' % JOURNAL).strip())
            if lines > before:
                break
            time.sleep(0.2)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
    assert killed, 'the run ended before its first journal write could be caught'
    time.sleep(3)  # whatever the module had started on the guest ends with its SSH session
    assert RUN_F in lab.ssh('cat %s' % JOURNAL)
    back = lab.playbook('rollback.yml', '-e', 'oomguard_rollback_run_id=' + RUN_F)
    assert back.returncode == 0, back.stdout[-5000:] + back.stderr[-2000:]
    assert lab.adj(pid) == -1000, 'runtime value not restored'
    assert lab.our_dropins() == []
    assert lab.configured() == -1000
    lab.passed.add('f')


def test_g_user_override_conf_is_verified(lab):
    lab.require('e')
    lab.ssh("mkdir -p /etc/systemd/system/ballast.service.d && printf '[Service]\\nOOMScoreAdjust=-1000\\n' > %s && "
            "systemctl daemon-reload" % OVERRIDE)
    pid = lab.restart_ballast()
    assert lab.adj(pid) == -1000 and lab.configured() == -1000
    proc = lab.playbook('remediate.yml', '-e', 'oomguard_remediate_mode=reset', '-e', 'oomguard_run_id=' + RUN_G)
    try:
        if proc.returncode == 0:
            # The reset is effective: what systemd will apply at the next start reads the new value.
            assert lab.configured() == 0, proc.stdout[-4000:]
        else:
            assert 'override.conf' in proc.stdout + proc.stderr, proc.stdout[-5000:] + proc.stderr[-2000:]
            assert lab.configured() == -1000
    finally:
        lab.playbook('rollback.yml', '-e', 'oomguard_rollback_run_id=' + RUN_G)
        lab.ssh('rm -f %s && systemctl daemon-reload' % OVERRIDE)
    lab.passed.add('g')
