# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as it ships: what an execution environment gets from it, licence, metadata.

The execution environment checks run ansible-builder itself on the collection as ansible-galaxy
builds and installs it, and evaluate the bindep lines it reports the way ansible-builder's build
does (``bindep`` without a profile at run time, ``bindep -b compile`` in the builder stage).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bindep.depends import Depends

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The controller's packages, and only those: the libvirt client library (and ssh, for qemu+ssh://)
# at run time; what builds libvirt-python in the builder stage.
CONTROLLER_PYTHON = ["libvirt-python>=9.0"]
PLATFORMS = {
    "rpm": ["platform:rpm", "platform:redhat", "platform:fedora"],
    "dpkg": ["platform:dpkg", "platform:debian", "platform:ubuntu"],
}
CONTROLLER_RUNTIME = {
    "rpm": {"libvirt-libs", "openssh-clients"},
    "dpkg": {"libvirt0", "openssh-client"},
}
CONTROLLER_COMPILE = {
    "rpm": {"gcc", "python3-devel", "pkgconf-pkg-config", "libvirt-devel"},
    "dpkg": {"gcc", "python3-dev", "pkg-config", "libvirt-dev"},
}
# Part of the hyper host stack: never in an execution environment.
HOST_STACK = {
    "qemu-system-x86", "qemu-kvm", "qemu-utils", "qemu-img", "libvirt-daemon-system", "libvirt-daemon-kvm",
    "qemu-guest-agent", "crun", "umoci", "skopeo", "haproxy", "nftables", "dnsmasq", "dnsmasq-base", "busybox-static",
}  # fmt: skip


def run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def requirement_lines(text: str) -> list[str]:
    """Lines of a requirements or bindep file, comments (ansible-builder's "# from collection ...") removed."""
    lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def packages(bindep_text: str, profiles: list[str]) -> set[str]:
    depends = Depends(bindep_text)
    return set(depends.list_all_packages(depends.active_rules(profiles)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built by ansible-galaxy (build_ignore applied) and installed in a fresh path."""
    work = tmp_path_factory.mktemp("collection")
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(work / "dist"), str(ROOT)])
    (tarball,) = (work / "dist").glob("hyper-pods-*.tar.gz")
    run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", str(work / "collections"), str(tarball)])
    # --force: without it ansible-galaxy skips a collection found in ANSIBLE_COLLECTIONS_PATH (make's .build).
    assert (work / "collections" / "ansible_collections" / "hyper" / "pods" / "MANIFEST.json").is_file()
    return work / "collections"


@pytest.fixture(scope="module")
def introspected(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """What ``ansible-builder introspect`` reports for the installed collection: pip lines, bindep text."""
    out = tmp_path_factory.mktemp("introspect")
    run([str(BIN / "ansible-builder"), "introspect", "--write-pip", str(out / "pip.txt"), "--write-bindep", str(out / "bindep.txt"), str(installed)])
    return requirement_lines((out / "pip.txt").read_text()), "\n".join(requirement_lines((out / "bindep.txt").read_text()))


def test_introspect_python_is_the_controllers(introspected: tuple[list[str], str]) -> None:
    pip = introspected[0]
    assert pip == CONTROLLER_PYTHON


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_introspect_system_is_the_controllers(introspected: tuple[list[str], str], platform: str) -> None:
    bindep_text = introspected[1]
    runtime = packages(bindep_text, ["default", *PLATFORMS[platform]])
    builder = packages(bindep_text, ["compile", *PLATFORMS[platform]])
    assert runtime == CONTROLLER_RUNTIME[platform]
    assert builder == CONTROLLER_RUNTIME[platform] | CONTROLLER_COMPILE[platform]
    assert not (runtime | builder) & HOST_STACK


def test_bootstrap_still_gets_the_whole_test_stack() -> None:
    """scripts/bootstrap.sh installs ``bindep -b test``: the host stack, the build tools, sshd, mmdebstrap."""
    text = (ROOT / "bindep.txt").read_text()
    test = packages(text, ["test", *PLATFORMS["dpkg"]])
    host = packages(text, ["host", *PLATFORMS["dpkg"]])
    assert host - CONTROLLER_RUNTIME["dpkg"] >= HOST_STACK - {"qemu-kvm", "qemu-img", "libvirt-daemon-kvm", "dnsmasq"}
    assert test >= host | CONTROLLER_COMPILE["dpkg"] | {"python3", "python3-venv", "make", "git", "rsync", "mmdebstrap", "openssh-server"}
    assert "bindep -b test" in (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_requirements_leave_ansible_core_to_the_environment() -> None:
    names = [re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower() for line in requirement_lines((ROOT / "requirements.txt").read_text())]
    assert names == ["libvirt-python"]
    assert any(line.startswith("ansible-core") for line in requirement_lines((ROOT / "test-requirements.txt").read_text()))


def test_meta_execution_environment() -> None:
    from ansible_builder.ee_schema import validate_schema

    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    validate_schema(meta)
    assert meta["version"] == 3
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_ansible_builder_create(tmp_path: Path) -> None:
    definition = ROOT / "docs" / "ee" / "execution-environment.yml"
    run([str(BIN / "ansible-builder"), "create", "-f", str(definition), "--context", str(tmp_path / "context")], cwd=tmp_path)
    containerfile = next(p for p in (tmp_path / "context").iterdir() if p.name in ("Containerfile", "Dockerfile")).read_text()
    assert "introspect.py introspect" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert (tmp_path / "context" / "_build" / "requirements.yml").read_text() == (definition.parent / "requirements.yml").read_text()


def test_copying_is_the_gpl3() -> None:
    text = (ROOT / "COPYING").read_text()
    assert text.startswith("                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007")
    assert "END OF TERMS AND CONDITIONS" in text
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["license"] == ["GPL-3.0-or-later"]


def test_galaxy_has_no_placeholder_url() -> None:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    for key in ("repository", "documentation", "homepage", "issues"):
        value = galaxy.get(key)
        assert value is None or not re.search(r"example\.(invalid|com|org)|localhost|TODO", str(value)), f"galaxy.yml {key}: {value}"


def _documentation(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DOCUMENTATION" for t in node.targets):
            assert isinstance(node.value, ast.Constant)
            return dict(yaml.safe_load(str(node.value.value)))
    raise AssertionError(f"{path} has no DOCUMENTATION")


def _plugin_docs() -> list[tuple[Path, dict[str, object]]]:
    found = []
    for kind in ("modules", "connection", "inventory", "filter"):
        for path in sorted((ROOT / "plugins" / kind).glob("*.py")):
            if path.name.startswith("_"):
                continue
            if kind == "filter":
                # The filter documentation lives in a YAML file beside the code, one per filter.
                for doc in sorted((ROOT / "plugins" / kind).glob("*.yml")):
                    found.append((doc, dict(yaml.safe_load(doc.read_text())["DOCUMENTATION"])))
                break
            found.append((path, _documentation(path)))
    return found


def _version(text: object) -> tuple[int, ...]:
    assert isinstance(text, str) and re.fullmatch(r"\d+\.\d+\.\d+", text), f"not a version: {text!r}"
    return tuple(int(part) for part in text.split("."))


def test_version_added_is_consistent() -> None:
    """No plugin was added in a version later than the collection's (the connection said 1.0.0 in 0.1.0)."""
    version = _version(yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"])
    docs = _plugin_docs()
    assert len(docs) >= 9
    later = {str(path.relative_to(ROOT)): doc.get("version_added") for path, doc in docs if _version(doc.get("version_added")) > version}
    assert not later, f"version_added later than galaxy.yml's version: {later}"
