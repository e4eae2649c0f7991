#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_exec
short_description: Run a command in a container of a hyper pod
version_added: 0.1.0
description:
  - Runs a command in a running container of a running hyper pod, like C(docker exec). The guest of
    the pod runs it through the container's exec helper (see O(exec_helper)), or C(crun exec), started
    through the QEMU guest agent.
  - The command is an argument list. It is never given to a shell unless you name one yourself,
    for example O(argv=[sh, -c, 'echo $HOME']).
  - Output of any size is supported and binary safe. The guest writes stdout and stderr to files
    that are read back in chunks and then removed. Output that is not valid UTF-8 is returned with
    replacement characters.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
attributes:
  action:
    support: none
    description: No action plugin; the module runs on the hyper host only.
  async:
    support: full
    description:
      - Runs under C(async), also with C(poll=0) and M(ansible.builtin.async_status), with the same result as without.
      - O(timeout) still bounds the command.
  check_mode:
    support: none
    description: The command is not run in check mode. Ansible skips the task.
  diff_mode:
    support: none
    description: The module cannot know what a command changes.
  idempotent:
    support: none
    description: The command runs each time. It reports RV(ignore:changed=true) whenever it ran.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, next to libvirtd.
options:
  pod:
    description:
      - Name of the pod, as given to M(hyper.pods.hyper_pod). The pod must be running.
    type: str
    required: true
  container:
    description:
      - Name of the container in the pod. It must be running.
    type: str
    required: true
  argv:
    description:
      - The command as a list, the program first. The program is looked up on the container's E(PATH).
      - Exactly one of O(argv) and O(command) is required.
    type: list
    elements: str
  command:
    description:
      - The command as one string, split into words like a shell would (Python C(shlex.split)),
        but never run by a shell. Variables, pipes and redirections are not expanded.
      - Exactly one of O(argv) and O(command) is required.
    type: str
  stdin:
    description:
      - Text to send to the command's standard input.
      - Logged like any option value; use O(stdin_secret) for a secret.
    type: str
  stdin_secret:
    description:
      - Like O(stdin), but not logged (the option is C(no_log)) and masked in the output.
      - Mutually exclusive with O(stdin).
    type: str
  output_limit:
    description:
      - The most bytes of RV(stdout), and of RV(stderr), the module returns, each. A command whose output is longer fails
        the task with a message naming this option (the guest is not trusted to end its output, and the output is held
        in memory).
    type: int
    default: 67108864
  stdin_add_newline:
    description:
      - Add a newline to O(stdin) when it does not end with one.
    type: bool
    default: true
  env:
    description:
      - Environment variables to set for the command, in addition to the container's own.
      - The values are not logged.
    type: dict
  chdir:
    description:
      - Absolute path in the container to run the command in. The container's working directory when not given.
    type: str
  user:
    description:
      - Numeric user to run as, V(UID) or V(UID:GID). The container's user when not given.
      - User names are not resolved.
    type: str
  timeout:
    description:
      - Seconds the command may run. Then it is killed (SIGKILL), and the result has RV(timed_out=true).
    type: float
    default: 60
  strip_empty_ends:
    description:
      - Remove trailing newlines from RV(stdout) and RV(stderr).
    type: bool
    default: true
  exec_helper:
    description:
      - Run the command through the container's exec helper when it runs, a small server that C(crun exec) started
        in the container once; the command is forked by it and gets the same namespaces, user, capabilities,
        limits, cgroup, seccomp filter and environment as from C(crun exec), about ten times faster under TCG.
      - Without a helper (a pod or container made before it, or a helper that was stopped) and with V(false) the
        command runs through C(crun exec).
    type: bool
    default: true
  fail_on_rc:
    description:
      - Fail when the command exits with a non-zero code, dies by a signal, or times out.
      - With V(false) the task reports the result and succeeds.
    type: bool
    default: true
notes:
  - The command runs in the container's namespaces (its network namespace is the pod's, so
    C(127.0.0.1) reaches the other containers). Only the process C(crun exec) started is killed on
    timeout, not processes it forked into the background.
  - C(crun) reports a process killed by signal N as exit code 128+N. The module returns such
    codes (129 to 192) as RV(signal) with RV(rc=null), even when the command exited with that code
    itself.
seealso:
  - module: hyper.pods.hyper_pod
  - module: hyper.pods.hyper_pod_info
"""

EXAMPLES = r"""
- name: Run a command in the web container
  hyper.pods.hyper_exec:
    pod: web
    container: httpd
    argv: [ls, -l, /var/www]
  register: listing

- name: A command line, split into words (no shell)
  hyper.pods.hyper_exec:
    pod: web
    container: httpd
    command: wget -q -O - http://127.0.0.1:8080/

- name: A pipeline needs a shell, so name one
  hyper.pods.hyper_exec:
    pod: web
    container: httpd
    argv: [sh, -c, "ps | wc -l"]

- name: Feed standard input, with environment and working directory
  hyper.pods.hyper_exec:
    pod: web
    container: app
    argv: [sh, -c, "cat > config.ini"]
    stdin: "{{ lookup('ansible.builtin.template', 'config.ini.j2') }}"
    chdir: /etc/app
    env:
      API_TOKEN: "{{ vault_api_token }}"

- name: A command that may fail, with a time limit
  hyper.pods.hyper_exec:
    pod: web
    container: app
    argv: [/usr/local/bin/migrate]
    timeout: 600
    fail_on_rc: false
  register: migrate

- name: Report a failed migration
  ansible.builtin.debug:
    msg: "migrate failed ({{ migrate.rc }}): {{ migrate.stderr }}"
  when: migrate.rc != 0
"""

RETURN = r"""
cmd:
  description: The argument list that was run in the container.
  returned: when the command ran
  type: list
  elements: str
  sample: [ls, -l, /var/www]
rc:
  description:
    - Exit code of the command; V(null) when it died by a signal or was killed at the timeout.
  returned: when the command ran
  type: int
  sample: 0
signal:
  description: Number of the signal that killed the command (V(9) after a timeout), else V(null).
  returned: when the command ran
  type: int
  sample: null
stdout:
  description: Standard output, decoded as UTF-8 (invalid bytes replaced).
  returned: when the command ran
  type: str
  sample: hello
stderr:
  description: Standard error, decoded as UTF-8 (invalid bytes replaced).
  returned: when the command ran
  type: str
  sample: ""
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the command ran
  type: list
  elements: str
  sample: [hello]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran
  type: list
  elements: str
  sample: []
stdout_truncated:
  description: Whether RV(stdout) was cut short. The module reads the whole output, so this is V(false).
  returned: when the command ran
  type: bool
  sample: false
stderr_truncated:
  description: Whether RV(stderr) was cut short. The module reads the whole output, so this is V(false).
  returned: when the command ran
  type: bool
  sample: false
duration:
  description: Seconds from the start of the command to the end of reading its output.
  returned: when the command ran
  type: float
  sample: 0.118
timed_out:
  description: Whether the command ran longer than O(timeout) and was killed.
  returned: when the command ran
  type: bool
  sample: false
via:
  description:
    - How the command was started in the container, V(helper) (the container's exec helper) or V(crun exec).
  returned: when the command ran
  type: str
  sample: helper
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.exec import exec_in_pod  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "pod": {"type": "str", "required": True},
        "container": {"type": "str", "required": True},
        "argv": {"type": "list", "elements": "str"},
        "command": {"type": "str"},
        "stdin": {"type": "str"},
        "stdin_secret": {"type": "str", "no_log": True},
        "output_limit": {"type": "int", "default": 67108864},
        "stdin_add_newline": {"type": "bool", "default": True},
        "env": {"type": "dict", "no_log": True},
        "chdir": {"type": "str"},
        "user": {"type": "str"},
        "timeout": {"type": "float", "default": 60},
        "strip_empty_ends": {"type": "bool", "default": True},
        "fail_on_rc": {"type": "bool", "default": True},
        "exec_helper": {"type": "bool", "default": True},
    }
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("argv", "command"), ("stdin", "stdin_secret")],
        required_one_of=[("argv", "command")],
        supports_check_mode=False,
    )
    run_module(module, exec_in_pod)


if __name__ == "__main__":
    main()
