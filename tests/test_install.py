"""device/install.sh from a clone and from a built wheel (issue 16: the documented Pi install could not succeed).

Each install is a fresh venv without the system's site-packages, edge-meta[device] installed into it by pip (its
dependencies from the package index), and the script's own self-check: a real detection on the shipped sample."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """What a fresh clone holds for an install: the project's metadata, the package and device/ (a copy, so that
    pip's in-tree build leaves this checkout alone)."""
    dest = tmp_path_factory.mktemp("clone")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("edge_meta", "device"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def install(clone: Path, prefix: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(clone / "device" / "install.sh"), *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PREFIX": str(prefix), "PYTHON": sys.executable, **env})


def assert_installed(r: subprocess.CompletedProcess, venv: Path) -> None:
    """The self-check found the sample's words, edge-meta sits in the venv itself, and the venv sees nothing of the
    system's site-packages (so the check proves the [device] extra brought what the device needs)."""
    assert r.returncode == 0, r.stdout + r.stderr
    found = next(line for line in r.stdout.splitlines() if line.startswith("self-check: result: "))
    assert int(found.split()[2].split("/")[0]) > 0
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import edge_meta, onnxruntime, sounddevice; "
                            "print(edge_meta.__file__)"], capture_output=True, text=True, check=True, cwd=venv).stdout
    assert Path(where.strip()).is_relative_to(venv)


@pytest.fixture(scope="module")
def wheel(clone, tmp_path_factory) -> Path:
    """The wheel `python -m build --wheel` makes of the clone."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(clone)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = dist.glob("edge_meta-*-py3-none-any.whl")
    return path


def installed_from(venv: Path) -> str:
    """Where pip took the venv's edge-meta from (its direct_url.json)."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
                           "print(m.distribution('edge-meta').read_text('direct_url.json'))"],
                          capture_output=True, text=True, check=True, cwd=venv).stdout


def test_install_from_a_clone_and_rerun_from_a_wheel(clone, wheel, tmp_path):
    """From the clone; then rerun with the wheel of the same version, which replaces it (pip alone keeps an
    installed version, so a rebuilt wheel would have changed nothing)."""
    venv = tmp_path / "opt" / "venv"
    assert_installed(install(clone, tmp_path / "opt", "--venv-only"), venv)
    assert f'"url": "{clone.as_uri()}"' in installed_from(venv)
    assert_installed(install(clone, tmp_path / "opt", "--venv-only", EDGE_META_SPEC=str(wheel)), venv)
    assert f'"url": "{wheel.as_uri()}"' in installed_from(venv)


def test_install_from_a_built_wheel_keeps_the_device_extra(clone, wheel, tmp_path):
    assert_installed(install(clone, tmp_path / "opt", "--venv-only", EDGE_META_SPEC=str(wheel)), tmp_path / "opt" / "venv")


@pytest.mark.parametrize("service, command", [("daemon", "device run"), ("wyoming", "device wyoming")])
def test_the_unit_runs_from_prefix_and_documents_an_installed_file(clone, service, command):
    r = install(clone, Path("/srv/em"), "--print-unit", "--service", service)
    assert r.returncode == 0, r.stderr
    assert "/opt/edge-meta" not in r.stdout
    assert f"ExecStart=/srv/em/venv/bin/edge-meta {command} " in r.stdout
    assert "Documentation=file:///srv/em/README.md" in r.stdout  # install.sh puts device/README.md there
    script = (clone / "device" / "install.sh").read_text()
    assert 'install -m 0644 "$HERE/README.md" "$PREFIX/README.md"' in script


def test_an_unknown_service_or_a_missing_unit_is_refused(clone, tmp_path):
    r = install(clone, tmp_path / "opt", "--print-unit", "--service", "mqtt")
    assert r.returncode == 2 and "unknown service 'mqtt'" in r.stderr
    partial = tmp_path / "partial"
    shutil.copytree(clone / "device", partial / "device")
    (partial / "device" / "edge-meta-wyoming.service").unlink()
    r = install(partial, tmp_path / "opt", "--print-unit", "--service", "wyoming")
    assert r.returncode == 2 and "edge-meta-wyoming.service is not in this copy" in r.stderr, r.stderr


def test_a_32_bit_userland_on_a_64_bit_kernel_is_refused(clone, tmp_path):
    """onnxruntime has no armv7 wheel: an armhf Python on an aarch64 kernel gets a clear refusal, before any venv
    (this machine's Python is 64-bit: the stand-in interpreter answers the pointer size as an armhf one would)."""
    armhf = tmp_path / "python3-armhf"
    armhf.write_text(f'#!/bin/sh\ncase "$*" in *calcsize*) echo 32 ;; *) exec {sys.executable} "$@" ;; esac\n')
    armhf.chmod(0o755)
    r = install(clone, tmp_path / "opt", "--venv-only", PYTHON=str(armhf))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "32-bit userland" in r.stderr and "64-bit OS" in r.stderr
    assert not (tmp_path / "opt").exists()
