# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/harness/cloud_doubles.py: the two cloud APIs of the fleet scenario in one background
process, on loopback only, stopped by their recorded PIDs, with nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from ansible_collections.oomguard.fleet.tests.harness.cloud_doubles import process_starttime

HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'harness', 'cloud_doubles.py')
KEYS = {'ALIBABA_CLOUD_ACCESS_KEY_ID': 'LTAI5tCloudDoublesTest1', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': 'doubles-secret'}


def run(*args, keys=True):
    env = dict(os.environ)
    for key in KEYS:
        env.pop(key, None)
    if keys:
        env.update(KEYS)
    return subprocess.run([sys.executable, HARNESS] + list(args), capture_output=True, text=True, env=env,
                          check=False, timeout=180)


def alive(pid, starttime):
    return process_starttime(pid) == starttime


def listening(url):
    host, port = url.rsplit('/', 1)[-1].split(':')
    with socket.create_connection((host, int(port)), timeout=2):
        return True


def test_up_records_loopback_apis_and_down_stops_them_even_when_the_parent_died(tmp_path):
    state_dir = str(tmp_path / 'clouds')
    proc = run('up', '--state', state_dir, '--alicloud', 'web01', '--alicloud-failing', 'web02', '--aws', 'web03')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(state_dir, 'state.json'), encoding='utf-8') as handle:
        state = json.load(handle)
    try:
        assert state['status'] == 'up'
        assert state['ecs_endpoint'].startswith('http://127.0.0.1:') and state['moto_endpoint'].startswith('http://127.0.0.1:')
        assert listening(state['ecs_endpoint']) and listening(state['moto_endpoint'])
        assert state['hosts']['web01'] == {'provider': 'alicloud', 'instance_id': 'i-web01', 'region': 'cn-hangzhou',
                                           'disks': ['d-web01-0', 'd-web01-1'], 'snapshots_fail': False}
        assert state['hosts']['web02']['snapshots_fail'] is True
        assert state['hosts']['web03']['provider'] == 'aws' and state['hosts']['web03']['instance_id'].startswith('i-')
        assert len(state['hosts']['web03']['disks']) == 2
        assert alive(state['pid'], state['starttime']) and alive(state['moto_pid'], state['moto_starttime'])

        again = run('up', '--state', state_dir, '--alicloud', 'web01')
        assert again.returncode == 2 and 'records running doubles' in again.stderr

        # The parent dies without stopping moto: down finds moto by its own recorded PID.
        os.kill(state['pid'], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(state['pid'], state['starttime']) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(state['moto_pid'], state['moto_starttime'])
    finally:
        down = run('down', '--state', state_dir)
    assert down.returncode == 0, down.stderr
    assert 'moto_server %d' % state['moto_pid'] in down.stdout
    assert not alive(state['pid'], state['starttime']) and not alive(state['moto_pid'], state['moto_starttime'])
    assert run('down', '--state', state_dir).stdout.strip() == 'cloud doubles down: nothing to stop'


def test_without_the_key_pair_up_fails_and_leaves_nothing_running(tmp_path):
    state_dir = str(tmp_path / 'clouds')
    proc = run('up', '--state', state_dir, '--alicloud', 'web01', keys=False)
    assert proc.returncode == 2 and 'before they were ready' in proc.stderr, proc.stderr
    with open(os.path.join(state_dir, 'doubles.log'), encoding='utf-8') as handle:
        assert 'ALIBABA_CLOUD_ACCESS_KEY_ID' in handle.read()
    with open(os.path.join(state_dir, 'state.json'), encoding='utf-8') as handle:
        state = json.load(handle)
    assert state['status'] == 'down' and not alive(state['pid'], state['starttime'])
