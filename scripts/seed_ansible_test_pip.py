"""Pre-seed ansible-test's pip bootstrap script.

ansible-test downloads ``get-pip-<version>.py`` from a host that may be unreachable.
It caches that script under ``~/.ansible/test/cache/``; this writes a stand-in there that
installs the same pip version (and the setuptools and wheel older ansible-tests pin beside it)
from wheels fetched through the normal package index.

Usage: seed_ansible_test_pip.py [PYTHON_VERSION ...]   (default: the version of the Python running it;
name the target Pythons of a sanity run, e.g. 2.7 3.6)
"""

import pathlib
import subprocess
import sys

STAND_IN = '''"""Stand-in for get-pip.py: install pip from a local wheel."""
import glob
import os
import sys

WHEELS = {wheels!r}
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.path.insert(0, glob.glob(os.path.join(WHEELS, "pip-*.whl"))[0])
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", "--upgrade", "--force-reinstall", "--no-index",
               "--find-links", WHEELS] + ARGS))
'''


def seed(python_version):
    from ansible_test._internal import python_requirements

    packages = python_requirements.get_venv_packages(type('Py', (), {'version': python_version})())
    version = packages['pip']
    wanted = sorted('%s==%s' % (name, pin) for name, pin in packages.items() if pin)
    cache = pathlib.Path.home() / '.ansible' / 'test' / 'cache'
    wheels = cache / ('pip-wheels-%s' % version)
    script = cache / ('get_pip_%s.py' % version.replace('.', '_'))
    have = set(path.name.split('-')[0].lower() + '==' + path.name.split('-')[1] for path in wheels.glob('*.whl'))
    if script.exists() and set(wanted) <= have:
        return
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:',
                    '-d', str(wheels)] + wanted, check=True)
    script.write_text(STAND_IN.format(wheels=str(wheels)))
    print('seeded %s (%s)' % (script, ', '.join(wanted)))


def main():
    for python_version in sys.argv[1:] or ['%d.%d' % sys.version_info[:2]]:
        seed(python_version)


if __name__ == '__main__':
    main()
