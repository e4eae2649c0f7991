"""Offline stand-in for pip's get-pip.py bootstrap script, for ansible-test.

ansible-test bootstraps pip into its sanity-test virtual environments with a get-pip.py it
downloads from a host that CI machines here cannot reach (only package registries are
reachable). This script does the same job with what Python ships: ensurepip installs the
bundled pip, then pip installs the exact packages ansible-test asked for (pip==X and friends)
from the package index. The Makefile puts it where ansible-test looks for its cached copy.
"""

import subprocess
import sys

# ensurepip runs in its own process: in-process it sets PIP_CONFIG_FILE=/dev/null in our
# environment, which would hide the machine's pip configuration (index, CA bundle) below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])
