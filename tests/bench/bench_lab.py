# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the panic lab (tests/harness/vm.py, tests/system/test_panic_lab.py).

Prints the guest image's build time cold (into a temporary cache, removed afterwards, so the
real cache is left as it is) and cached, boot to SSH, one panic-reboot cycle (spike ->
panic -> reboot -> SSH), and the whole lab's wall time with a cached image. Goal: the lab
within 5 minutes under TCG on 2 cores. The guest's only network is qemu's restricted user
mode; the cold build downloads Debian packages from the mirror apt uses. Needs root;
skipped (exit 0) otherwise. ``--no-cold`` skips the cold build, ``--no-lab`` the whole lab.
Timings depend on the machine's load, which is printed with them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, '.build', 'collections'))

from ansible_collections.oomguard.fleet.tests.harness import vm  # noqa: E402

GOAL_SECONDS = 300.0


def load():
    with open('/proc/loadavg') as handle:
        return handle.read().split()[0]


def cold_build():
    root = tempfile.mkdtemp(prefix='oomguard-lab-bench-')
    try:
        dummy, seconds = vm.build_image(root=root)
        return seconds
    finally:
        vm.remove_tree(root)


def panic_cycle(guest):
    offset = guest.console_size()
    started = time.monotonic()
    guest.spike()
    guest.wait_for_console([re.escape(line) for line in vm.PANIC_LINES], offset, timeout=300)
    panicked = time.monotonic() - started
    guest.wait_for_console([r'Rebooting in'], offset, timeout=60)
    guest.wait_for_ssh()
    return panicked, time.monotonic() - started


def lab_wall_time():
    env = dict(os.environ, PYTHONPATH=os.path.join(TOP, '.build', 'collections'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, '.build', 'collections'), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    started = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '--import-mode=importlib', '-q', '-s',
                           os.path.join(TOP, 'tests', 'system', 'test_panic_lab.py')],
                          capture_output=True, text=True, env=env, cwd=TOP, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-2000:])
        raise SystemExit('bench_lab: the lab failed')
    figures = re.search(r'^panic lab figures: (.*)$', proc.stdout, re.M)
    return elapsed, figures.group(1) if figures else '{}'


def main(argv):
    if os.geteuid() != 0 or vm.missing_tools():
        print('bench_lab: skipped (needs root and %s)' % ', '.join(vm.TOOLS))
        return 0
    print('bench_lab: load average %s at start' % load())
    if '--no-cold' not in argv:
        print('image build, cold:    %6.1f s' % cold_build())
    vm.build_image()  # the real cache, built once if absent
    started = time.monotonic()
    dummy, seconds = vm.build_image()
    print('image build, cached:  %6.2f s' % (time.monotonic() - started))
    with vm.Guest.booted() as guest:
        print('boot to SSH (%s):     %6.1f s' % (guest.accel, guest.boot_seconds))
        panicked, cycle = panic_cycle(guest)
        print('spike to panic:       %6.1f s' % panicked)
        print('panic-reboot cycle:   %6.1f s (spike -> panic -> reboot -> SSH)' % cycle)
    if '--no-lab' not in argv:
        elapsed, figures = lab_wall_time()
        print('lab wall time:        %6.1f s (goal <= %.0f s)  steps: %s' % (elapsed, GOAL_SECONDS, figures))
    left = vm.leftovers()
    print('leftovers: %s' % (', '.join(left) or 'none'))
    print('bench_lab: load average %s at end' % load())
    return 1 if left else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
