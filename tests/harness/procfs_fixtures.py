# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixture procfs trees for the hosts of a scenario, from a JSON description.

Each host gets ``<dest>/<host>/proc`` (the vendor runbook's host, tests/unit/procfs_tree.py's
``vendor_tree``, plus the host's own processes and meminfo), an empty ``<dest>/<host>/evidence``
(no logs, so the real machine's logs never reach a verdict) and ``<dest>/<host>/initial.json``,
every pid's ``oom_score_adj`` as written, for checking later that a rollback put all of them back.
The spec maps host names to ``{"processes": [...], "meminfo": {...}}`` in procfs_tree's keys::

    python3 tests/harness/procfs_fixtures.py --dest DIR --spec '{"node01": {"processes": [...]}}'

The assess and remediate roles read a tree through ``oomguard_assess_proc_path`` and
``oomguard_remediate_proc_path``: nothing on a machine without CAP_SYS_RESOURCE can lower a real
process's ``oom_score_adj`` to -1000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

try:
    from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree
except ImportError:  # run as a script from a checkout: the collection is linked under .build/collections
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    '.build', 'collections'))
    from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree


def build(dest, spec):
    """Write every host's tree afresh; returns {host: {pid: oom_score_adj}}."""
    made = {}
    for host, description in sorted(spec.items()):
        if not host or os.sep in host or host.startswith('.'):
            raise ValueError('not a host name: %r' % host)
        base = os.path.join(dest, host)
        shutil.rmtree(base, ignore_errors=True)
        proc = vendor_tree(os.path.join(base, 'proc'), extra=description.get('processes', []),
                           meminfo=description.get('meminfo'))
        os.makedirs(os.path.join(base, 'evidence'))
        values = {}
        for entry in sorted(os.listdir(proc)):
            path = os.path.join(proc, entry, 'oom_score_adj')
            if entry.isdigit() and os.path.isfile(path):
                with open(path, encoding='ascii') as handle:
                    values[entry] = int(handle.read())
        with open(os.path.join(base, 'initial.json'), 'w', encoding='utf-8') as handle:
            json.dump(values, handle, indent=1, sort_keys=True)
        made[host] = values
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(description='Fixture procfs trees for a scenario\'s hosts.')
    parser.add_argument('--dest', required=True)
    parser.add_argument('--spec', required=True, help='JSON: {host: {processes: [...], meminfo: {...}}}')
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        if not isinstance(spec, dict):
            raise ValueError('the spec must be a JSON object of hosts')
        made = build(os.path.abspath(args.dest), spec)
    except ValueError as exc:
        print('procfs_fixtures.py: error: %s' % exc, file=sys.stderr)
        return 2
    print(json.dumps(made, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
