"""Run real ansible / ansible-playbook commands from tests and read their results.

``adhoc()`` runs one module on localhost with the ``oneline`` callback and returns the
parsed result; ``playbook()`` runs a playbook text against an inventory text. Both
capture everything printed (for the no-secret checks) and use the checkout's venv and
collection path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The ansible commands of the Python that runs the tests: the pinned venv, or a compat venv
# (scripts/compat.sh) for another ansible-core.
VENV_BIN = os.path.dirname(sys.executable)


def base_env(extra=None, log_path=None):
    env = dict(os.environ)
    env.update({
        'PATH': VENV_BIN + os.pathsep + env.get('PATH', ''),
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(TOP, '.build', 'collections'),
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'ANSIBLE_LOCALHOST_WARNING': 'false',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'false',
        'ANSIBLE_HOST_KEY_CHECKING': 'false',
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': 'false',
    })
    # Never let a test pick up real cloud credentials or profiles from the environment.
    for key in list(env):
        if key.startswith(('AWS_', 'ALIBABA_CLOUD_', 'ALICLOUD_')):
            del env[key]
    env['AWS_CONFIG_FILE'] = os.devnull
    env['AWS_SHARED_CREDENTIALS_FILE'] = os.devnull
    env['AWS_EC2_METADATA_DISABLED'] = 'true'
    env['ALIBABA_CLOUD_ECS_METADATA_DISABLED'] = 'true'
    if log_path:
        env['ANSIBLE_LOG_PATH'] = str(log_path)
    env.update(extra or {})
    return env


class AdhocResult(object):
    def __init__(self, proc):
        self.proc = proc
        self.output = proc.stdout + proc.stderr
        self.failed = proc.returncode != 0
        self.result = None
        for line in proc.stdout.splitlines():
            if ' => ' in line and line.split(' | ', 1)[0].strip() == 'localhost':
                self.result = json.loads(line.split(' => ', 1)[1])
        if self.result is None:
            raise AssertionError('no result line in ansible output:\n%s' % self.output)

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)


def adhoc(module, args, env=None, check=False, diff=False, verbosity=0, log_path=None, timeout=300):
    cmd = [os.path.join(VENV_BIN, 'ansible'), 'localhost', '-c', 'local', '-m', module, '-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if verbosity:
        cmd.append('-' + 'v' * verbosity)
    run_env = base_env(env, log_path)
    run_env['ANSIBLE_LOAD_CALLBACK_PLUGINS'] = 'true'
    run_env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.oneline'
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout, check=False)
    return AdhocResult(proc)


def playbook(tmp_path, play_text, inventory_text, env=None, args=(), log_path=None, timeout=600):
    play = os.path.join(str(tmp_path), 'play.yml')
    inventory = os.path.join(str(tmp_path), 'inventory.ini')
    with open(play, 'w') as handle:
        handle.write(play_text)
    with open(inventory, 'w') as handle:
        handle.write(inventory_text)
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inventory, play] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=base_env(env, log_path), timeout=timeout, check=False)
