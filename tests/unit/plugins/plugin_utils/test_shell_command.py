# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection's argv for a command: Ansible's wrapper run as it is, the sleep 0 dropped only where it changes nothing."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.plugin_utils._shell_command import command_argv, drop_sleep, unwrap


def wrapped(body: str, executable: str = "/bin/sh") -> str:
    """What ActionBase._low_level_execute_command hands the connection."""
    return f"{executable} -c {shlex.quote(body)}"


MKDTEMP = '( umask 77 && mkdir -p "` echo /root/.ansible/tmp `"&& mkdir "` echo /root/.ansible/tmp/ansible-tmp-1-2-3 `" && echo x="` echo y `" )'


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # Ansible's own commands: one shell, no sleep.
        (wrapped("echo ~ && sleep 0"), ["/bin/sh", "-c", "echo ~"]),
        (wrapped(MKDTEMP + " && sleep 0"), ["/bin/sh", "-c", MKDTEMP]),
        (wrapped("/usr/bin/python3 && sleep 0"), ["/bin/sh", "-c", "/usr/bin/python3"]),
        (wrapped("rm -f -r /root/.ansible/tmp/x/ > /dev/null 2>&1 && sleep 0"), ["/bin/sh", "-c", "rm -f -r /root/.ansible/tmp/x/ > /dev/null 2>&1"]),
        (wrapped("chmod u+rwx /t/ /t/src && sleep 0", "/bin/bash"), ["/bin/bash", "-c", "chmod u+rwx /t/ /t/src"]),
        # become: the sudo line keeps its own inner quoting.
        (
            wrapped("sudo -H -S -n  -u root /bin/sh -c 'echo BECOME-SUCCESS-x ; /usr/bin/python3' && sleep 0"),
            ["/bin/sh", "-c", "sudo -H -S -n  -u root /bin/sh -c 'echo BECOME-SUCCESS-x ; /usr/bin/python3'"],
        ),
        # raw with an executable of its own: no sleep 0 was added, the wrapper still goes.
        (wrapped("echo 'it''s' \"$HOME\""), ["/bin/sh", "-c", "echo 'it''s' \"$HOME\""]),
        (wrapped("true"), ["/bin/sh", "-c", "true"]),
        # Not the wrapper: the whole string through /bin/sh -c, as before.
        ("echo 'héllo' | cat", ["/bin/sh", "-c", "echo 'héllo' | cat"]),
        ('/bin/sh -c "echo $HOME && sleep 0"', ["/bin/sh", "-c", '/bin/sh -c "echo $HOME && sleep 0"']),
        ("/bin/sh -c echo\\ hi", ["/bin/sh", "-c", "/bin/sh -c echo\\ hi"]),
        ("/bin/sh -c 'a' 'b'", ["/bin/sh", "-c", "/bin/sh -c 'a' 'b'"]),
        ("/bin/sh  -c 'true'", ["/bin/sh", "-c", "/bin/sh  -c 'true'"]),
        ("sh -c 'true'", ["/bin/sh", "-c", "sh -c 'true'"]),
        ("/bin/$X -c 'true'", ["/bin/sh", "-c", "/bin/$X -c 'true'"]),
        ("/bin/sh -e 'true'", ["/bin/sh", "-c", "/bin/sh -e 'true'"]),
        ("/bin/sh -c ''", ["/bin/sh", "-c", "/bin/sh -c ''"]),
        ("/bin/sh -c 'unclosed", ["/bin/sh", "-c", "/bin/sh -c 'unclosed"]),
        ("", ["/bin/sh", "-c", ""]),
    ],
)
def test_command_argv(command: str, expected: list[str]) -> None:
    assert command_argv(command) == expected


@pytest.mark.parametrize(
    "body",
    [
        # The sleep stays wherever the text before it would end differently, or parse differently, without it.
        "sleep 5 & && sleep 0",
        "a | && sleep 0",
        "a; && sleep 0",
        "a && && sleep 0",
        "echo \\ && sleep 0",
        "echo hi  && sleep 0",
        "cat <<EOF\nbody\nEOF && sleep 0",
        "echo a # note && sleep 0",
        "( && sleep 0",
        " && sleep 0",
        "echo sleep 0",
        "echo a &&sleep 0",
    ],
)
def test_drop_sleep_keeps_it(body: str) -> None:
    assert drop_sleep(body) == body


def test_unwrap_refuses_what_the_outer_shell_would_expand() -> None:
    assert unwrap("/bin/sh -c 'echo hi'") == ("/bin/sh", "echo hi")
    assert unwrap('/bin/sh -c "echo hi"') is None  # double quotes: the outer shell would expand $, `, \
    assert unwrap("/bin/sh -c 'a'\\''b'") is None  # not the exact form shlex.quote makes
    assert unwrap("/bin/sh -c 'a'\"'\"'b'") == ("/bin/sh", "a'b")


SAME_OUTCOME = [
    "echo ~ && sleep 0",
    MKDTEMP.replace("/root/.ansible/tmp", "$T") + " && sleep 0",
    "false && sleep 0",
    "exit 3 && sleep 0",
    "echo out; echo err >&2; exit 7 && sleep 0",
    "true || exit 4 && sleep 0",
    "kill -TERM $$ && sleep 0",
    "echo \"$0 $#\" 'q'\"'\"'uote' && sleep 0",
    "printf '%s\\n' a b | while read -r x; do echo \"<$x>\"; done && sleep 0",
    "sleep 5 & && sleep 0",
    "echo \\ && sleep 0",
    "( && sleep 0",
]


def as_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")
@pytest.mark.parametrize("body", SAME_OUTCOME)
def test_same_outcome_as_the_string_through_sh(body: str, tmp_path: Any) -> None:
    """The argv ends like ``/bin/sh -c STRING`` did (exit status and stdout) on this host's own sh."""
    command = wrapped(body)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/someone"}
    before = subprocess.run(["/bin/sh", "-c", command], capture_output=True, env={**env, "T": f"{tmp_path}/a"}, check=False, cwd=str(tmp_path), timeout=30)
    after = subprocess.run(command_argv(command), capture_output=True, env={**env, "T": f"{tmp_path}/b"}, check=False, cwd=str(tmp_path), timeout=30)
    # A death by signal N is exit status 128 + N either way: the outer shell reported it so, the connection does.
    assert (as_status(after.returncode), after.stdout) == (as_status(before.returncode), before.stdout)
    if before.returncode < 128:  # the outer shell said "Terminated" about a death by signal; the connection logs it instead
        assert bool(after.stderr) == bool(before.stderr)
