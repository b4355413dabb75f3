"""Pre-seed ansible-test's pip bootstrap script.

ansible-test downloads ``get-pip-<version>.py`` from a host that may be unreachable.
It caches that script under ``~/.ansible/test/cache/``; this writes a stand-in there that
installs the same pip version from a wheel fetched through the normal package index.
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


def main():
    from ansible_test._internal import python_requirements

    version = python_requirements.get_venv_packages(
        type('Py', (), {'version': '%d.%d' % sys.version_info[:2]})())['pip']
    cache = pathlib.Path.home() / '.ansible' / 'test' / 'cache'
    wheels = cache / ('pip-wheels-%s' % version)
    script = cache / ('get_pip_%s.py' % version.replace('.', '_'))
    if script.exists() and list(wheels.glob('pip-*.whl')):
        return
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:',
                    '-d', str(wheels), 'pip==%s' % version], check=True)
    script.write_text(STAND_IN.format(wheels=str(wheels)))
    print('seeded %s' % script)


if __name__ == '__main__':
    main()
