"""The roles' argument specs read well in ``ansible-doc -t role``: full sentences throughout."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECS = sorted(glob.glob(os.path.join(TOP, 'roles', '*', 'meta', 'argument_specs.yml')))


def entry_points():
    for path in SPECS:
        with open(path, encoding='utf-8') as handle:
            for name, spec in yaml.safe_load(handle)['argument_specs'].items():
                yield '%s:%s' % (os.path.basename(os.path.dirname(os.path.dirname(path))), name), spec


def sentences(description):
    return description if isinstance(description, list) else [description]


def test_every_role_has_a_spec():
    assert [os.path.basename(os.path.dirname(os.path.dirname(p))) for p in SPECS] == ['assess', 'remediate', 'report', 'snapshot']


@pytest.mark.parametrize('role,spec', list(entry_points()))
def test_short_description_is_one_full_sentence(role, spec):
    short = spec['short_description']
    assert short[:1].isupper() and short.endswith('.'), '%s: %r' % (role, short)
    assert '. ' not in short.rstrip('.'), '%s: one sentence, the rest goes to description: %r' % (role, short)
    # ansible-doc -t role -l cuts it after 70 characters.
    assert len(short) <= 70, '%s: %d characters: %r' % (role, len(short), short)


@pytest.mark.parametrize('role,spec', list(entry_points()))
def test_descriptions_are_full_sentences(role, spec):
    bad = [text for text in sentences(spec['description']) if not text.rstrip().endswith('.')]

    def walk(options, prefix=''):
        for name, option in (options or {}).items():
            texts = sentences(option.get('description'))
            if not texts or texts == [None]:
                bad.append('%s%s has no description' % (prefix, name))
            for text in texts:
                if text and not text.rstrip().endswith(('.', ':')):
                    bad.append('%s%s: %r' % (prefix, name, text))
            walk(option.get('suboptions') or option.get('options'), prefix + name + '.')
    walk(spec.get('options'))
    assert bad == [], role
