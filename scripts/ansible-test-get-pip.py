"""Offline replacement for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test creates empty virtual environments and runs this script inside them (through
its quiet_pip wrapper) with pip arguments and the pinned packages (e.g. ``pip==24.2``).
The usual script comes from a host CI machines here cannot reach, so this one installs
pip from the interpreter's bundled ensurepip wheel, then lets that pip install the pinned
packages from the package index that is configured on the machine.
"""

import subprocess
import sys

# get-pip.py options that plain `pip install` does not know.
_GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip disables pip's configuration (index, certificates) in the
# environment of the process that calls it, which would break the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [arg for arg in sys.argv[1:] if arg not in _GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
