# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side bookkeeping of the disk_snapshot action plugin: which hosts still wait,
merging each round's results, progress lines, and timeouts. Pure functions."""

from __future__ import annotations


def pending(hosts):
    """Keys of the hosts whose snapshots are still progressing (and not failed)."""
    return sorted(key for key, result in hosts.items() if not result.get('failed') and result.get('status') == 'progressing')


def merge(hosts, update):
    """Results of a round replace the hosts' earlier results, keeping what earlier rounds
    created and deleted (a later round only finds them); other hosts keep theirs."""
    merged = dict(hosts)
    for key, new in update.items():
        old = hosts.get(key) or {}
        new = dict(new)
        new['changed'] = bool(old.get('changed') or new.get('changed'))
        for field in ('created', 'deleted'):
            new[field] = list(old.get(field) or []) + [x for x in new.get(field) or [] if x not in (old.get(field) or [])]
        new['reused'] = [x for x in new.get('reused') or [] if x not in new['created']]
        merged[key] = new
    return merged


def progress_lines(hosts, keys=None):
    """``host: <snapshot> (<disk>) <status> <n>%`` for each snapshot of each host (in ``keys`` when given)."""
    lines = []
    for key in sorted(keys if keys is not None else hosts):
        result = hosts[key]
        for line in result.get('progress') or []:
            lines.append('%s: %s' % (key, line))
        if not result.get('progress') and not result.get('failed') and result.get('message'):
            lines.append('%s: %s' % (key, result['message']))
        if result.get('failed'):
            lines.append('%s: FAILED: %s' % (key, result.get('msg')))
    return lines


def time_out(hosts, wait_timeout):
    """Mark every still-progressing host failed, with its states in the message."""
    out = dict(hosts)
    for key in pending(hosts):
        result = dict(out[key])
        states = '; '.join(result.get('progress') or []) or 'none listed yet'
        result.update(failed=True, timed_out=True, status='failed',
                      msg='Failed to wait for snapshots of instance %s: still not accomplished after %s seconds (wait_timeout); states: %s'
                      % (result.get('instance_id'), wait_timeout, states))
        result['message'] = result['msg']
        out[key] = result
    return out


def failed_keys(hosts):
    return sorted(key for key, result in hosts.items() if result.get('failed'))
