# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hyper
short_description: Run tasks in a container of a hyper pod
version_added: 0.1.0
description:
  - Runs commands in, and copies files to and from, a container of a running hyper pod (a libvirt VM made by
    M(hyper.pods.hyper_pod)), through the QEMU guest agent of the pod's VM. No SSH, no network access to the pod.
  - Commands run as C(/bin/sh -c COMMAND) inside the container, so the container's image must have C(/bin/sh) (or the
    shell set by C(ansible_shell_executable)). Ansible's own wrapper of a command (C(EXECUTABLE -c 'COMMAND && sleep 0'))
    runs as C(EXECUTABLE -c COMMAND), without a second shell around it and without the C(sleep 0) (a workaround for SSH)
    where dropping it cannot change the outcome. They are forked by the container's exec helper, which C(crun exec) started once (the same process attributes as
    C(crun exec) at a fraction of its cost), or run by C(crun exec) when the container has none.
  - Modules written in Python also need Python in the image; C(ansible.builtin.raw) and C(ansible.builtin.script) do not.
  - Pipelining works (module input on stdin, of any size). Output of any size comes back whole (the guest writes it to
    files that are read back in chunks). A command killed by signal N returns C(128 + N), as a shell reports it.
  - Files are read and written in the container's root filesystem by a fixed step in the guest that resolves symbolic
    links inside the container (as the container sees them) and never out of it, and opens no device node; a file put
    replaces the target (written beside it, then renamed), with the source file's permission bits. See
    C(docs/security.md).
notes:
  - "The controller (or the delegated host) needs the Python libvirt binding and a libvirt URI of the hyper host in
    O(uri): V(qemu:///system) on the hyper host itself, or a remote URI such as V(qemu+ssh://root@host1/system) or
    V(qemu+tls://host1/system) from another machine (an AWX execution environment, for example). Over a remote URI
    everything works, but files always go through the guest agent (see O(data_channel)); see C(docs/guide.md)."
  - Commands run as the container's own user; C(remote_user) is ignored. Files are written by the guest as root, so a
    container whose processes run as another user may not read the module files Ansible copies.
  - C(become) works only where the image has C(sudo) or C(su) and needs no password (there is no terminal to answer a
    prompt).
  - Paths are taken from the container's root; an absolute symbolic link in the container points to the container's own
    file, never to the guest's.
author:
  - hyper.pods developers (@hyper-pods)
options:
  remote_addr:
    description:
      - V(POD/CONTAINER), or V(POD) alone with O(default_container) set or a pod of exactly one container.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_hyper_host
  default_container:
    description:
      - The container to use when O(remote_addr) names only a pod.
      - Not needed for a pod of exactly one container.
    type: str
    vars:
      - name: ansible_hyper_container
    env:
      - name: ANSIBLE_HYPER_CONTAINER
  uri:
    description:
      - The libvirt connection URI of the hyper host.
    type: str
    default: qemu:///system
    vars:
      - name: ansible_hyper_uri
    env:
      - name: ANSIBLE_HYPER_URI
    ini:
      - section: hyper_connection
        key: uri
  command_timeout:
    description:
      - How long one command may run, in seconds. A command that runs longer is killed and the task fails, with the
        output collected until then.
      - Not named C(timeout), because Ansible sets an option of that name to the connection timeout of the play
        (C(ansible_timeout), 10 seconds by default) on every task.
    type: float
    default: 600
    vars:
      - name: ansible_hyper_timeout
    env:
      - name: ANSIBLE_HYPER_TIMEOUT
    ini:
      - section: hyper_connection
        key: timeout
  write_chunk_size:
    description:
      - Bytes per guest agent request when copying a file to the container. At most 131072; larger requests hang
        qemu-ga 7.2.
    type: int
    default: 131072
    vars:
      - name: ansible_hyper_write_chunk_size
    env:
      - name: ANSIBLE_HYPER_WRITE_CHUNK_SIZE
    ini:
      - section: hyper_connection
        key: write_chunk_size
  data_channel:
    description:
      - Copy files of 256 KiB and more over the pod's data channel, a virtio-serial port whose host end is a unix socket,
        instead of the guest agent's base64 file writes (measured 20 to 30 times as fast under TCG).
      - It needs the controller on the hyper host with access to QEMU's sockets (root), a local O(uri), and a pod created
        by this version or later. Otherwise, and while both ports of a pod are busy with other copies, files go through
        the agent.
    type: bool
    default: true
    vars:
      - name: ansible_hyper_data_channel
    env:
      - name: ANSIBLE_HYPER_DATA_CHANNEL
    ini:
      - section: hyper_connection
        key: data_channel
  read_chunk_size:
    description:
      - Bytes per guest request when fetching a file from the container or reading a command's output. At most 2097152
        for a fetch (one guest step's output in one libvirt message); larger values are cut to that.
    type: int
    default: 524288
    vars:
      - name: ansible_hyper_read_chunk_size
    env:
      - name: ANSIBLE_HYPER_READ_CHUNK_SIZE
    ini:
      - section: hyper_connection
        key: read_chunk_size
  fetch_limit:
    description:
      - The largest file a fetch reads from the container, in bytes. A larger file (or one that keeps growing) fails the
        fetch (the guest is not trusted to end its data). The data goes to the local file chunk by chunk, never whole
        into memory.
    type: int
    default: 1073741824
    vars:
      - name: ansible_hyper_fetch_limit
    env:
      - name: ANSIBLE_HYPER_FETCH_LIMIT
    ini:
      - section: hyper_connection
        key: fetch_limit
  output_limit:
    description:
      - The most bytes of stdout, and of stderr, a command may return, each. More fails the task with a message naming
        this option (the output is held in the controller's memory).
    type: int
    default: 67108864
    vars:
      - name: ansible_hyper_output_limit
    env:
      - name: ANSIBLE_HYPER_OUTPUT_LIMIT
    ini:
      - section: hyper_connection
        key: output_limit
"""

EXAMPLES = r"""
# Inventory: one host per container
# all:
#   hosts:
#     web:
#       ansible_connection: hyper.pods.hyper
#       ansible_host: shop/httpd

- name: Add a container of a pod made earlier in the play
  ansible.builtin.add_host:
    name: shop-httpd
    ansible_connection: hyper.pods.hyper
    ansible_host: shop/httpd

- name: Run a command in it (no Python needed)
  ansible.builtin.raw: cat /etc/os-release
  delegate_to: shop-httpd
"""

import contextlib  # noqa: E402
import os  # noqa: E402
import posixpath  # noqa: E402
import shlex  # noqa: E402
from typing import Any, Optional  # noqa: E402

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes, to_text  # noqa: E402
from ansible.plugins.connection import ConnectionBase  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (  # noqa: E402
    HyperError,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import MAX_CHUNK, MAX_REQUEST_DATA, GuestAgent, LibvirtAgentTransport  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import (  # noqa: E402
    STREAM_MIN_SIZE,
    Pusher,
    data_channels,
    is_local_uri,
    usable_channels,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import container_rootfs, run_in_container  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import CONTAINER_NAME  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import READ_STEP, STAGE_DIR, ContainerFiles, container_path  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import running_pod  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient  # noqa: E402
from ansible_collections.hyper.pods.plugins.plugin_utils._adapter import connection_error  # noqa: E402
from ansible_collections.hyper.pods.plugins.plugin_utils._shell_command import command_argv  # noqa: E402

display = Display()

# A local file is sent in blocks of this size (each one guest-file-open/-write.../-close), so memory stays bounded.
PUT_BLOCK = 4 * 1024 * 1024
# The end of a command is seen at most this fraction of its run late (the library's default is 10 %): a module run
# of ~2 s under TCG was seen ~100 ms late on average, against ~50 ms for community.libvirt's libvirt_qemu (5 %).
POLL_PACE = 0.05


def parse_host(host: str, default_container: Optional[str]) -> tuple[str, Optional[str]]:
    """``pod/container`` or ``pod`` → (pod, container or None when it must be found)."""
    pod, sep, container = str(host).partition("/")
    if not pod or (sep and not container) or "/" in container:
        raise AnsibleConnectionFailure(f"hyper connection: host {host!r} is not POD or POD/CONTAINER")
    chosen = container if sep else (default_container or None)
    if chosen is not None and not CONTAINER_NAME.fullmatch(chosen):
        raise AnsibleConnectionFailure(f"hyper connection: {chosen!r} is not a container name (host {host!r})")
    return pod, chosen


def pick_container(pod: str, wanted: Optional[str], names: list[str]) -> str:
    """The container to use: the one named (it must be in the pod), or the pod's only one."""
    if wanted is not None:
        if wanted not in names:
            raise AnsibleConnectionFailure(f"pod {pod} has no container {wanted} (it has: {', '.join(names) or 'none'})")
        return wanted
    if len(names) == 1:
        return names[0]
    raise AnsibleConnectionFailure(
        f"pod {pod} has {len(names)} containers ({', '.join(names) or 'none'}): name one as {pod}/CONTAINER or set ansible_hyper_container"
    )


def guest_path(container: str, path: str) -> str:
    """Where a path of the container is in the guest; relative paths are taken from the container's root."""
    clean = posixpath.normpath(posixpath.join("/", path))
    return container_rootfs(container) + ("" if clean == "/" else clean)


class Connection(ConnectionBase):
    """Commands and files in a container of a hyper pod, through the pod VM's guest agent."""

    transport = "hyper.pods.hyper"
    has_pipelining = True
    has_tty = False

    # Seams for the unit tests: how to open libvirt and how to talk to a domain's agent.
    def open_client(self, uri: str) -> LibvirtClient:
        return LibvirtClient.open(uri)

    def make_agent(self, dom: Any, name: str) -> GuestAgent:
        return GuestAgent(LibvirtAgentTransport(dom, name), name=name, pace=POLL_PACE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Optional[LibvirtClient] = None
        self._agent: Optional[GuestAgent] = None
        self._pod = ""
        self._container = ""
        self._pusher: Optional[Pusher] = None

    @property
    def _where(self) -> str:
        return f"pod {self._pod} container {self._container}"

    def _connect(self) -> Connection:
        if self._connected:
            return self
        pod, wanted = parse_host(self.get_option("remote_addr"), self.get_option("default_container"))
        self._pod = pod
        try:
            client = self.open_client(str(self.get_option("uri")))
        except HyperError as err:
            raise AnsibleConnectionFailure(f"hyper connection to pod {pod}: {err.message}") from None
        try:
            found = running_pod(client, pod)
            dom, vm_id = found.dom, found.current.vm_id
            self._container = pick_container(pod, wanted, [c.name for c in found.current.pod.containers])
            agent = self.make_agent(dom, f"pod {pod} ({vm_id})")
            agent.ping()
        except HyperError as err:
            client.close()
            raise AnsibleConnectionFailure(f"hyper connection to pod {pod}: {err.message}") from None
        except AnsibleConnectionFailure:
            client.close()
            raise
        self._client, self._agent = client, agent
        self._pusher = self._make_pusher(client, dom, agent)
        display.vvv(f"HYPER: connected to {self._where} ({vm_id})", host=pod)
        self._connected = True
        return self

    def _make_pusher(self, client: LibvirtClient, dom: Any, agent: GuestAgent) -> Optional[Pusher]:
        """The data channel for large copies, when this controller can use it (see the data_channel option)."""
        if not self.get_option("data_channel") or not is_local_uri(str(self.get_option("uri"))):
            return None
        try:
            channels = usable_channels(data_channels(client.xml_desc(dom)))
        except HyperError as err:
            display.vvv(f"HYPER: no data channel ({err.message}); files go through the agent", host=self._pod)
            return None
        if not channels:
            display.vvv("HYPER: the pod has no data channel this controller can open; files go through the agent", host=self._pod)
            return None
        return Pusher(agent, channels, str(dom.UUIDString()))

    def _require_agent(self) -> GuestAgent:
        if self._agent is None:
            self._connect()
        if self._agent is None:  # for the type checker; _connect raises instead
            raise AnsibleConnectionFailure(f"hyper connection to pod {self._pod}: not connected")
        return self._agent

    def _failure(self, err: HyperError, what: str) -> AnsibleError:
        return connection_error(err, f"{self._where}: {what}")

    # -- commands ------------------------------------------------------------------------------

    def exec_command(self, cmd: str, in_data: Optional[bytes] = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        agent = self._require_agent()
        argv = command_argv(to_text(cmd, errors="surrogate_or_strict"))
        stdin = to_bytes(in_data) if in_data is not None else None
        display.vvv(f"HYPER: EXEC {shlex.join(argv)}", host=self._pod)
        try:
            # large_output: the streams go through guest files, so module output of any size comes back whole
            # (captured output is cut at 16 MiB, and a reply above 4 MiB is refused by libvirt and lost).
            # Up to 1 MiB a stream comes back inline, so it costs nothing more.
            result = run_in_container(
                agent,
                self._container,
                argv,
                stdin=stdin,
                timeout=float(self.get_option("command_timeout")),
                large_output=True,
                output_limit=self._limit("output_limit"),
            )
        except HyperError as err:
            raise self._failure(err, "running a command") from None
        stdout, stderr = result.stdout, result.stderr
        if result.timed_out:
            raise AnsibleError(
                f"{self._where}: the command ran longer than {self.get_option('command_timeout')}s (ansible_hyper_timeout) and was killed; "
                f"stdout: {to_text(stdout[-2000:], errors='surrogate_or_replace')!r}; stderr: {to_text(stderr[-2000:], errors='surrogate_or_replace')!r}"
            )
        for name, truncated in (("stdout", result.stdout_truncated), ("stderr", result.stderr_truncated)):
            if truncated:
                note = f"{self._where}: the command's {name} was cut at 16 MiB by the guest agent"
                display.warning(note)
                stderr += f"\n[hyper: {note}]\n".encode()
        rc = result.rc
        if rc is None:
            signal = result.signal or 0
            # crun reports a death by signal N as 128 + N (the library splits it back out); a shell does the same.
            display.vvv(f"HYPER: exit status {128 + signal}: killed by signal {signal} (or exited with that status)", host=self._pod)
            rc = 128 + signal
        return rc, stdout, stderr

    # -- files ---------------------------------------------------------------------------------

    def _write_chunk(self) -> int:
        size = int(self.get_option("write_chunk_size"))
        if not 0 < size <= MAX_REQUEST_DATA:
            raise AnsibleError(f"hyper connection: write_chunk_size must be between 1 and {MAX_REQUEST_DATA}, not {size}")
        return size

    def _read_chunk(self) -> int:
        size = int(self.get_option("read_chunk_size"))
        if not 0 < size <= MAX_CHUNK:
            raise AnsibleError(f"hyper connection: read_chunk_size must be between 1 and {MAX_CHUNK}, not {size}")
        return size

    def _limit(self, option: str) -> int:
        value = int(self.get_option(option))
        if value <= 0:
            raise AnsibleError(f"hyper connection: {option} must be a number of bytes above 0, not {value}")
        return value

    def _files(self, agent: GuestAgent) -> ContainerFiles:
        return ContainerFiles(agent, self._container, timeout=float(self.get_option("command_timeout")))

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        agent = self._require_agent()
        display.vvv(f"HYPER: PUT {in_path} TO {out_path}", host=self._pod)
        local = to_bytes(in_path, errors="surrogate_or_strict")
        # A FIFO or device as the source would block or never end: regular files only.
        if not os.path.isfile(local):
            raise AnsibleFileNotFound(f"file or module does not exist (or is not a regular file): {in_path}")
        try:
            relative = container_path(to_text(out_path, errors="surrogate_or_strict"), "out_path")
        except HyperError as err:
            raise self._failure(err, f"copying {in_path}") from None
        chunk = self._write_chunk()
        mode = os.stat(local).st_mode & 0o7777
        size = os.path.getsize(local)
        files = self._files(agent)
        if self._pusher is not None and size >= STREAM_MIN_SIZE:
            try:
                with open(local, "rb") as source:
                    pushed = self._pusher.push(source, size, relative, mode, float(self.get_option("command_timeout")), root=files.root)
            except HyperError as err:
                # The agent path does not depend on the channel: use it, for this file and the rest of the connection.
                display.warning(f"{self._where}: copying {out_path} over the data channel failed ({err.message}); using the guest agent instead")
                self._pusher, pushed = None, None
            if pushed is not None:
                return
            display.vvv("HYPER: the data channel is busy or failed; this file goes through the agent", host=self._pod)
        if size <= MAX_REQUEST_DATA:
            try:
                with open(local, "rb") as source:
                    files.write(relative, source.read(MAX_REQUEST_DATA + 1), mode)
            except HyperError as err:
                raise self._failure(err, f"copying {in_path} to {out_path}") from None
            return
        # Larger: staged in the guest's own /run/hyper (agent file writes), then copied into the container by the guest step.
        target = f"{STAGE_DIR}/put-{os.urandom(8).hex()}"
        written = 0
        try:
            agent.run(["mkdir", "-p", STAGE_DIR], f"creating {STAGE_DIR}")
            with open(local, "rb") as source:
                block, append = source.read(PUT_BLOCK), False
                while True:
                    following = source.read(PUT_BLOCK) if block else b""
                    last = not following
                    # The mode goes with the last block: write_file applies it after closing the file.
                    count = agent.write_file(target, block, chunk_size=chunk, append=append)
                    if count != len(block):
                        raise AnsibleError(f"{self._where}: wrote {count} of {len(block)} bytes of {out_path} at byte {written}")
                    written += count
                    if last:
                        break
                    block, append = following, True
            if written != size:
                raise AnsibleError(f"{self._where}: {in_path} is {size} bytes, {written} were written to {out_path} (did it change meanwhile?)")
            files.write_from(target, relative, mode)
        except HyperError as err:
            raise self._failure(err, f"copying {in_path} to {out_path}") from None
        finally:
            with contextlib.suppress(HyperError):
                agent.exec(["rm", "-f", target])

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        agent = self._require_agent()
        display.vvv(f"HYPER: FETCH {in_path} TO {out_path}", host=self._pod)
        limit = self._limit("fetch_limit")
        local = to_bytes(out_path, errors="surrogate_or_strict")
        try:
            with open(local, "wb") as target:
                # Chunk by chunk into the file: one chunk in memory, at most fetch_limit bytes on disk.
                size = self._files(agent).read_into(
                    to_text(in_path, errors="surrogate_or_strict"), target.write, limit=limit, step=min(self._read_chunk(), READ_STEP)
                )
        except HyperError as err:
            with contextlib.suppress(OSError):
                os.unlink(local)
            if err.details.get("limit") == limit:
                raise AnsibleError(f"{self._where}: fetching {in_path}: larger than fetch_limit ({limit} bytes, ansible_hyper_fetch_limit)") from None
            raise self._failure(err, f"fetching {in_path}") from None
        if size is None:
            with contextlib.suppress(OSError):
                os.unlink(local)
            raise AnsibleFileNotFound(f"{self._where}: {in_path} does not exist in the container (or a link is on its path)")
        if os.path.getsize(local) != size:
            raise AnsibleError(f"{self._where}: fetched {size} bytes of {in_path}, but {out_path} has {os.path.getsize(local)}")

    # -- lifecycle -----------------------------------------------------------------------------

    def reset(self) -> None:
        self.close()
        self._connect()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._agent = None
        self._pusher = None
        self._connected = False
