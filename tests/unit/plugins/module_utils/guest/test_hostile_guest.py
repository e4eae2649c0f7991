# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A compromised guest answers every parser of the host with malformed shapes: a typed error each, memory bounded."""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import parse_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError, load_guest_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import normalise_dns, render_resolv_conf
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredDns
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.state import StateFileError, parse_state
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import Reply, ScriptedTransport

DEEP = "[" * 100_000 + "]" * 100_000
WIDE = "[" + ",".join(["0"] * 1_000_000) + "]"
HUGE = '"' + "x" * (5 * 1024 * 1024) + '"'
HOSTILE_JSON = [
    ("deep nesting", DEEP),
    ("a 10^6-element list", WIDE),
    ("a huge string", HUGE),
    ("not JSON", "{nope"),
    ("not UTF-8", b"\xff\xfe{}"),
]


@pytest.mark.parametrize(("case", "text"), HOSTILE_JSON, ids=[case[0] for case in HOSTILE_JSON])
def test_load_guest_json_refuses(case: str, text: Any) -> None:
    with pytest.raises(GuestReplyError, match=r"^reply X: "):
        load_guest_json(text, "reply X")


@pytest.mark.parametrize(("case", "raw"), [(c, t) for c, t in HOSTILE_JSON if isinstance(t, str)], ids=[c for c, t in HOSTILE_JSON if isinstance(t, str)])
def test_every_agent_reply_is_bounded(agent: GuestAgent, transport: ScriptedTransport, case: str, raw: str) -> None:
    transport.on("guest-info", Reply(raw=raw))
    with pytest.raises(AgentError):
        agent.info()


@pytest.mark.parametrize(
    "reply",
    [
        {"count": -1, "buf-b64": "", "eof": True},
        {"count": "3", "buf-b64": "YWJj", "eof": True},
        {"count": 3, "buf-b64": "not base64!", "eof": True},
        {"count": 3, "buf-b64": 7, "eof": True},
        {"count": 3, "buf-b64": "YWJj", "eof": "yes"},
        {"count": True, "buf-b64": "YQ==", "eof": True},
        [],
    ],
)
def test_malformed_file_reads(agent: GuestAgent, transport: ScriptedTransport, reply: Any) -> None:
    transport.on("guest-file-open", Reply(1)).on("guest-file-read", Reply(reply)).on("guest-file-close", Reply({}))
    with pytest.raises(AgentError):
        agent.read_file("/etc/x")
    assert transport.names()[-1] == "guest-file-close"


def test_a_read_that_never_ends_stops_at_its_limit_in_bounded_memory(agent: GuestAgent, transport: ScriptedTransport) -> None:
    chunk = b"y" * (512 * 1024)
    block = {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(), "eof": False}
    transport.on("guest-file-open", Reply(1)).on("guest-file-close", Reply({}))
    transport.on("guest-file-read", *[Reply(block)] * 200)  # 100 MiB offered, never EOF
    written: list[int] = []
    tracemalloc.start()
    try:
        with pytest.raises(AgentError, match="larger than the limit of 8388608 bytes"):
            agent.read_into("/dev/zero", lambda data: written.append(len(data)), limit=8 * 1024 * 1024)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(written) <= 8 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while streaming"
    with pytest.raises(AgentError, match="larger than the limit"):  # the default limit holds for read_file
        transport.on("guest-file-open", Reply(1)).on("guest-file-close", Reply({}))
        transport.on("guest-file-read", *[Reply(block)] * 200)
        agent.read_file("/dev/zero")


@pytest.mark.parametrize(
    "text",
    [
        DEEP,
        WIDE,
        "[]",
        '{"web": 1}',
        '{"web": {"status": "running\\n", "pid": 1}}',
        '{"web": {"status": "running", "pid": -1}}',
        '{"web": {"status": "running", "pid": 1e400}}',
        '{"web": {"status": "running", "restarts": true}}',
    ],
)
def test_parse_status_refuses(text: str) -> None:
    with pytest.raises(AgentError):
        parse_status(text)


def _service(**over: Any) -> dict[str, Any]:
    service = {
        "name": "web",
        "address": "10.96.0.10",
        "family": "ipv4",
        "port": 80,
        "protocol": "tcp",
        "bind": "ipv4@10.96.0.10:80",
        "balance": "roundrobin",
        "check": {"enabled": False, "interval": 2000},
        "backends": [{"address": "127.0.0.1", "port": 8080, "weight": 1, "enabled": True, "endpoint": "ipv4@127.0.0.1:8080"}],
    }
    return {**service, **over}


def _state(*services: Any, vips: Any = None) -> bytes:
    return json.dumps({"format": 1, "services": list(services), "vips": ["10.96.0.10"] if vips is None else vips}).encode()


WHERE = "pod web (hyper-0000abcd): /etc/haproxy/hyper-services.json in container haproxy"


def test_a_good_state_file_passes() -> None:
    state = parse_state(_state(_service()), WHERE)
    assert state is not None and state["services"][0]["name"] == "web"
    assert parse_state(None, WHERE) is None


@pytest.mark.parametrize(
    "data",
    [
        _state(_service(name="web\nlisten evil")),
        _state(_service(name="web\x00")),
        _state(_service(name=7)),
        _state(_service(address="10.96.0.10%lo")),
        _state(_service(port=70000)),
        _state(_service(port="80")),  # the option accepts "80"; the stored form never has it
        _state(_service(bind="ipv4@0.0.0.0:22")),  # derived keys must be as derived
        _state(_service(backends="x")),
        _state(_service(backends=[{"address": "127.0.0.1\nserver x", "port": 1}])),
        _state({k: v for k, v in _service().items() if k != "port"}),
        _state(_service(), _service()),
        _state(_service(), vips=["192.168.1.1"]),
        _state(*["x"]),
        json.dumps({"format": 1, "services": [_service()] * 1001, "vips": []}).encode(),
        json.dumps({"format": 2, "services": [], "vips": []}).encode(),
        json.dumps({"services": [], "vips": [], "extra": 1}).encode(),
        json.dumps({"services": [], "vips": [], "config_sha256": "md5:x"}).encode(),
        b"[]",
        b"{",
        DEEP.encode(),
        b'"' + b"x" * (2 * 1024 * 1024) + b'"',
    ],
)
def test_a_hostile_state_file_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateFileError) as caught:
        parse_state(data, WHERE)
    message = caught.value.message
    assert message.startswith(WHERE) and "remove it to start afresh" in message
    assert "\nlisten evil" not in message and "\x00" not in message


@pytest.mark.parametrize("server", ["fe80::1%eth0", "fe80::1%eth0\nnameserver 6.6.6.6", "10.0.0.1 ", "10.0.0.1\n"])
def test_dns_zone_ids_and_line_breaks_are_refused(server: str) -> None:
    with pytest.raises(SpecError, match=r"dns\[0\]"):
        normalise_dns({"dns": [server]})


def test_resolv_conf_never_writes_a_line_break() -> None:
    with pytest.raises(HyperError, match="refusing a line"):
        render_resolv_conf(StoredDns(servers=("10.0.0.1\nnameserver 6.6.6.6",), search=(), options=()), [])


@pytest.mark.parametrize("value", ["s3cr3t\x00tail", 12345])
def test_an_env_error_never_shows_the_value(value: object) -> None:
    params = {"name": "web", "containers": [{"name": "app", "image": "docker.io/library/busybox:1.36", "env": {"TOKEN": value}}]}
    with pytest.raises(SpecError) as caught:
        normalise_pod(params)
    assert "TOKEN" in caught.value.message and "env" in caught.value.message
    assert "s3cr3t" not in caught.value.message and "12345" not in caught.value.message
