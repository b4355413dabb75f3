# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The namespace fleet harness against the real kernel, real sshd and real Ansible."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN

HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'harness', 'fleet.py')
_SPEC = importlib.util.spec_from_file_location('oomguard_fleet_harness', HARNESS)
fleet_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet_mod)

ANSIBLE = os.path.join(VENV_BIN, 'ansible')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the namespace fleet needs root')


def ansible_env():
    env = dict(os.environ)
    env.update({'ANSIBLE_DEPRECATION_WARNINGS': 'false', 'ANSIBLE_LOCALHOST_WARNING': 'false'})
    return env


def processes_mentioning(text):
    """PIDs whose command line mentions ``text`` (e.g. a fleet's state directory)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                if text.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def ip_json(*args):
    out = subprocess.run(['ip', '-j'] + list(args), capture_output=True, text=True, check=True).stdout
    return json.loads(out or '[]')


def assert_nothing_left(fleet, state):
    assert fleet_mod.leftovers(state) == []
    # Checked again here without the harness's helpers.
    namespaces = {ns['name'] for ns in ip_json('netns', 'list')}
    links = {link['ifname'] for link in ip_json('link', 'show')}
    for host in state['hosts']:
        assert host['netns'] not in namespaces
        assert host['veth'] not in links
        if host['pid']:
            assert fleet_mod.process_starttime(host['pid']) != host['starttime']
    if state.get('bridge'):
        assert state['bridge'] not in links
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        mounts = handle.read()
    assert fleet.state_dir not in mounts
    for host in state['hosts']:
        assert '/run/netns/%s ' % host['netns'] not in mounts
    assert processes_mentioning(fleet.state_dir) == []
    assert not os.path.exists(fleet.inventory_path)


@pytest.fixture(scope='module')
def fleet3(tmp_path_factory):
    fleet = fleet_mod.Fleet(str(tmp_path_factory.mktemp('fleet3')))
    fleet.up(3)
    yield fleet
    fleet.down()


def test_ping_through_real_ssh_on_every_host(fleet3):
    proc = subprocess.run([ANSIBLE, 'all', '-i', fleet3.inventory_path, '-m', 'ansible.builtin.ping', '-f', '3'],
                          capture_output=True, text=True, env=ansible_env(), check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in fleet3.hosts:
        assert '%s | SUCCESS' % host['name'] in proc.stdout


def ssh(fleet, host, command):
    return subprocess.run(['ssh'] + fleet.ssh_args() + ['-i', fleet.key_path, 'root@%s' % host['address'], command],
                          capture_output=True, text=True, check=True, timeout=30).stdout


def test_each_host_has_its_own_hostname_processes_and_mounts(fleet3):
    seen = {}
    for host in fleet3.hosts:
        out = ssh(fleet3, host, 'hostname; cat /etc/hostname; ps -e -o pid=,comm=; findmnt -n -o FSTYPE /root')
        lines = out.splitlines()
        assert lines[0] == host['name'] and lines[1] == host['name']
        procs = [line.split(None, 1) for line in lines[2:-1]]
        assert procs[0] == ['1', 'tini']
        assert len(procs) < 15, procs  # only the host's own: tini, sshd and this session
        assert lines[-1] == 'overlay'
        seen[host['name']] = (host['address'], lines[0])
    assert len({addr for addr, _name in seen.values()}) == 3
    assert len({name for _addr, name in seen.values()}) == 3
    with open('/etc/hostname', encoding='utf-8') as handle:
        assert handle.read().strip() not in seen  # the overlay kept the real /etc untouched


def test_writes_to_etc_var_lib_and_root_stay_on_the_host(fleet3):
    first, second = fleet3.hosts[0], fleet3.hosts[1]
    paths = ['/etc/oomguard-fleet-probe', '/var/lib/oomguard/fleet-probe', '/root/oomguard-fleet-probe']
    assert ssh(fleet3, first, 'ls -A /var/lib/oomguard').strip() == ''  # the collection's state starts empty
    ssh(fleet3, first, ' && '.join('echo %s > %s' % (first['name'], path) for path in paths))
    assert ssh(fleet3, first, 'cat %s' % ' '.join(paths)).split() == [first['name']] * 3
    seen = ssh(fleet3, second, 'for p in %s; do test -e $p && echo $p; done; true' % ' '.join(paths))
    assert seen.strip() == ''
    for path in paths:
        assert not os.path.exists(path)


def test_kernel_settings_are_read_only_on_a_host(fleet3):
    host = fleet3.hosts[0]
    # Writes the value already set, so nothing changes even if the guard were missing.
    out = ssh(fleet3, host, 'v=$(cat /proc/sys/vm/overcommit_ratio); '
                            '(echo "$v" > /proc/sys/vm/overcommit_ratio) 2>&1; echo "rc=$?"; '
                            # the per-mount options of the topmost mount on each path
                            'for p in /proc/sys /sys /proc/sysrq-trigger; do test -e $p || continue; '
                            'awk -v p=$p \'$5 == p {o = $6} END {print o}\' /proc/self/mountinfo; done')
    lines = out.splitlines()
    assert 'Read-only file system' in lines[0] and lines[1] in ('rc=1', 'rc=2'), lines
    for options in lines[2:]:
        assert options.split(',')[0] == 'ro', lines
    assert len(lines) == (5 if os.path.exists('/proc/sysrq-trigger') else 4), lines
    with open('/proc/sys/vm/panic_on_oom', encoding='ascii') as handle:
        assert handle.read().strip() == '0'


def test_strict_host_key_checking_rejects_a_wrong_key(fleet3, tmp_path):
    other = tmp_path / 'known_hosts'
    host = fleet3.hosts[0]
    other.write_text('%s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n'
                     % host['address'])
    args = [a.replace(fleet3.known_hosts_path, str(other)) for a in fleet3.ssh_args()]
    proc = subprocess.run(['ssh'] + args + ['-i', fleet3.key_path, 'root@%s' % host['address'], 'true'],
                          capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 255
    assert 'HOST IDENTIFICATION HAS CHANGED' in proc.stderr


def test_slot_clash_is_refused_and_leaves_the_other_fleet_alone(fleet3, tmp_path):
    intruder = fleet_mod.Fleet(str(tmp_path / 'intruder'))
    with pytest.raises(fleet_mod.FleetError) as err:
        intruder.up(2, slot=fleet3.state['slot'])
    message = str(err.value)
    assert 'is in use' in message and fleet3.state['bridge'] in message and 'pick another --slot' in message
    assert intruder.state['status'] == 'down'
    assert fleet_mod.leftovers(fleet3.state) != []  # the first fleet is untouched
    assert ssh(fleet3, fleet3.hosts[0], 'hostname').strip() == 'node01'


def test_second_fleet_gets_its_own_slot(fleet3, tmp_path):
    other = fleet_mod.Fleet(str(tmp_path / 'other'))
    with other.running(2) as running:
        assert running.state['slot'] != fleet3.state['slot']
        assert running.state['subnet'] != fleet3.state['subnet']
        assert ssh(running, running.hosts[1], 'hostname').strip() == 'node02'
        state = dict(running.state)
    assert_nothing_left(other, state)


def test_two_fleets_started_at_once_get_different_slots(tmp_path):
    dirs = [str(tmp_path / 'a'), str(tmp_path / 'b')]
    procs = [subprocess.Popen([sys.executable, HARNESS, 'up', '--hosts', '2', '--state', d],  # pylint: disable=consider-using-with
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in dirs]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    fleets = [fleet_mod.Fleet(d) for d in dirs]
    try:
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        states = [fleet.load() for fleet in fleets]
        assert states[0]['slot'] != states[1]['slot']
        assert states[0]['bridge'] != states[1]['bridge']
        for fleet in fleets:
            assert ssh(fleet, fleet.hosts[0], 'hostname').strip() == 'node01'
    finally:
        for fleet in fleets:
            fleet.down()
    for fleet in fleets:
        assert_nothing_left(fleet, fleet.state)


def test_down_of_a_stale_state_leaves_a_newer_fleet_in_its_slot_alone(tmp_path):
    old = fleet_mod.Fleet(str(tmp_path / 'old'))
    old.up(2)
    stale = json.loads(json.dumps(old.state))
    # Someone removes the old fleet by hand, without the harness ...
    for host in stale['hosts']:
        os.kill(host['pid'], signal.SIGKILL)
    for host in stale['hosts']:
        old._children.pop(host['pid']).wait(timeout=10)  # pylint: disable=protected-access
    for host in stale['hosts']:
        deadline = time.monotonic() + 10
        while fleet_mod.netns_pids(host['netns']) and time.monotonic() < deadline:
            time.sleep(0.02)
        subprocess.run(['ip', 'netns', 'del', host['netns']], check=True)
        # The kernel drops a deleted namespace's veth peer asynchronously; do not wait for it.
        subprocess.run(['ip', 'link', 'del', host['veth']], capture_output=True, check=False)
    subprocess.run(['ip', 'link', 'del', stale['bridge']], check=True)
    # ... and a new fleet takes the same slot and names.
    new = fleet_mod.Fleet(str(tmp_path / 'new'))
    with new.running(2, slot=stale['slot']):
        assert new.state['bridge'] == stale['bridge'] and new.hosts[0]['netns'] == stale['hosts'][0]['netns']
        assert old.down() == old.hosts and 'slot reused by oomguard-fleet:' in old.state['note']
        assert fleet_mod.leftovers(stale) == []
        assert ssh(new, new.hosts[1], 'hostname').strip() == 'node02'
        assert fleet_mod.leftovers(new.state) != []
        state = json.loads(json.dumps(new.state))
    assert_nothing_left(new, state)


@pytest.fixture
def dummy_route():
    """A real interface whose /24 sits where a fleet would go."""
    name, network = 'ogtest0', '10.214.7.0/24'
    subprocess.run(['ip', 'link', 'add', name, 'type', 'bridge'], check=True)
    try:
        subprocess.run(['ip', 'addr', 'add', '10.214.7.1/24', 'dev', name], check=True)
        subprocess.run(['ip', 'link', 'set', name, 'up'], check=True)
        yield network
    finally:
        subprocess.run(['ip', 'link', 'del', name], check=True)


def test_address_clash_is_refused(dummy_route, tmp_path):
    fleet = fleet_mod.Fleet(str(tmp_path / 'clash'))
    with pytest.raises(fleet_mod.FleetError) as err:
        fleet.up(1, network=dummy_route)
    assert 'route 10.214.7.0/24 dev ogtest0' in str(err.value)
    assert 'address 10.214.7.1 on ogtest0' in str(err.value)
    assert '--network' in str(err.value)
    with pytest.raises(fleet_mod.FleetError, match='is in use'):
        fleet.up(1, network=dummy_route, slot=0)


class BrokenSshdFleet(fleet_mod.Fleet):
    """The third host gets an sshd_config sshd refuses, so ``up`` fails half way."""

    def sshd_config_text(self, host):
        text = super().sshd_config_text(host)
        return text + 'NoSuchOption yes\n' if host['name'] == 'node03' else text


def test_failed_up_removes_what_it_made(tmp_path):
    fleet = BrokenSshdFleet(str(tmp_path / 'broken'))
    with pytest.raises(fleet_mod.FleetError) as err:
        fleet.up(4)
    assert 'node03' in str(err.value) and 'NoSuchOption' in str(err.value)
    assert fleet.state['status'] == 'down'
    assert len(fleet.state['hosts']) == 4  # all four were made before the wait ...
    assert_nothing_left(fleet, fleet.state)  # ... and all four are gone


def run_cli(*args):
    return subprocess.run([sys.executable, HARNESS] + list(args), capture_output=True, text=True, check=False,
                          timeout=120)


def start_up_and_signal(state_dir, signum):
    """Start ``fleet.py up`` with many hosts and signal it while it is still making them."""
    child = subprocess.Popen([sys.executable, HARNESS, 'up', '--hosts', '60', '--state', state_dir],  # pylint: disable=consider-using-with
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_path = os.path.join(state_dir, 'state.json')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(state_path, encoding='utf-8') as handle:
                state = json.load(handle)
            if state['status'] == 'creating' and len(state['hosts']) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    else:
        child.kill()
        pytest.fail('fleet.py up never reached 3 hosts')
    child.send_signal(signum)
    child.communicate(timeout=60)
    return child.returncode


def test_sigterm_during_up_cleans_up(tmp_path):
    state_dir = str(tmp_path / 'term')
    assert start_up_and_signal(state_dir, signal.SIGTERM) == 128 + signal.SIGTERM
    fleet = fleet_mod.Fleet(state_dir)
    state = fleet.load()
    assert state['status'] == 'down' and len(state['hosts']) >= 3
    assert_nothing_left(fleet, state)


def test_sigkilled_up_is_removed_by_down(tmp_path):
    state_dir = str(tmp_path / 'killed')
    assert start_up_and_signal(state_dir, signal.SIGKILL) == -signal.SIGKILL
    fleet = fleet_mod.Fleet(state_dir)
    state = fleet.load()
    assert state['status'] == 'creating'
    assert fleet_mod.leftovers(state) != []
    proc = run_cli('down', '--state', state_dir)
    assert proc.returncode == 0, proc.stderr
    assert 'hosts removed' in proc.stdout
    assert_nothing_left(fleet, state)
    again = run_cli('down', '--state', state_dir)
    assert again.returncode == 0 and 'nothing to remove' in again.stdout


def test_cli_round_trip_and_errors(tmp_path):
    state_dir = str(tmp_path / 'cli')
    missing = run_cli('inventory', '--state', state_dir)
    assert missing.returncode == 2 and 'no running fleet recorded' in missing.stderr
    bad = run_cli('up', '--hosts', '0', '--state', state_dir)
    assert bad.returncode == 2 and '--hosts must be between 1 and' in bad.stderr
    bad = run_cli('up', '--hosts', '1', '--prefix', 'bad-name', '--state', state_dir)
    assert bad.returncode == 2 and '--prefix must be' in bad.stderr
    bad = run_cli('up', '--hosts', '1', '--network', '10.0.0.0/25', '--state', state_dir)
    assert bad.returncode == 2 and '/24 or larger' in bad.stderr
    bad = run_cli('up', '--hosts', '1', '--network', 'nonsense', '--state', state_dir)
    assert bad.returncode == 2 and 'is not a network' in bad.stderr
    up = run_cli('up', '--hosts', '1', '--state', state_dir, '--inventory-copy', str(tmp_path / 'copy.yml'))
    assert up.returncode == 0, up.stderr
    try:
        again = run_cli('up', '--hosts', '1', '--state', state_dir)
        assert again.returncode == 2 and 'already records a fleet' in again.stderr
        inv = run_cli('inventory', '--state', state_dir)
        assert inv.returncode == 0 and inv.stdout.strip() == os.path.join(state_dir, 'inventory.yml')
        assert (tmp_path / 'copy.yml').read_text() == (tmp_path / 'cli' / 'inventory.yml').read_text()
    finally:
        down = run_cli('down', '--state', state_dir)
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / 'copy.yml').exists()
    fleet = fleet_mod.Fleet(state_dir)
    assert_nothing_left(fleet, fleet.load())


def test_state_under_run_is_refused():
    fleet = fleet_mod.Fleet('/run/oomguard-fleet-test-state')
    with pytest.raises(fleet_mod.FleetError, match='under /run, which each host replaces'):
        fleet.up(1)
    assert not os.path.exists(fleet.state_dir)


def test_corrupt_state_file_is_a_clear_error(tmp_path):
    (tmp_path / 'state.json').write_text('{not json')
    proc = run_cli('down', '--state', str(tmp_path))
    assert proc.returncode == 2 and 'is not a fleet state file' in proc.stderr


def test_module_teardown_leaves_nothing(tmp_path):
    fleet = fleet_mod.Fleet(str(tmp_path / 'teardown'))
    fleet.up(3)
    subprocess.run([ANSIBLE, 'all', '-i', fleet.inventory_path, '-m', 'ansible.builtin.ping'],
                   capture_output=True, env=ansible_env(), check=True, timeout=120)
    assert os.listdir(fleet.control_dir)  # Ansible left ControlPersist masters behind ...
    state = json.loads(json.dumps(fleet.state))
    assert fleet.down() and fleet.state['status'] == 'down'
    assert_nothing_left(fleet, state)  # ... and down closed them with the rest
    assert fleet.down() == []
