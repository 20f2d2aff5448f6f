"""Files the user may not read, a home the user may not write, an install without an extra, a missing vocabulary:
one line naming the problem and the fix, exit code 2, never a traceback (issue 16: each was a traceback)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture()
def unprivileged():
    """edge-meta ARGS run where permission bits hold. The tests run as root, who may read and write anything;
    root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH is refused what its mode bits refuse, like any user."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): cannot give up the right to read any file")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]

    def run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", "edge_meta.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, **(env or {})})

    return run


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("error: ")]) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_a_file_the_user_may_not_read_is_a_permission_problem(unprivileged, fsdd_dir, tmp_path):
    """A take, a recording, a profile and a config the user may not read: each named, with the permission as the
    problem (libsndfile called an unreadable take an unknown format: "use WAV, FLAC or OGG")."""
    takes = [tmp_path / f"take{i}.wav" for i in range(3)]
    for i, t in enumerate(takes):
        shutil.copy(fsdd_dir / "recordings" / f"4_theo_{i}.wav", t)
    store = tmp_path / "profiles.db"
    assert unprivileged("device", "enroll-word", "four", "--from", *takes, "--store", store).returncode == 0
    assert unprivileged("device", "export-profile", tmp_path / "profile.json", "--store", store).returncode == 0
    config = tmp_path / "device.toml"
    config.write_text("[daemon]\nlog_level = \"info\"\n")
    for locked in (takes[2], tmp_path / "profile.json", config):
        locked.chmod(0)
    denied = "permission denied for user"
    r = unprivileged("device", "enroll-word", "four", "--from", *takes, "--store", store, "--user", "bob")
    _refused(r, f"{takes[2]}: {denied}")
    assert "WAV, FLAC or OGG" not in r.stderr
    _refused(unprivileged("device", "detect", takes[2], "--store", store), f"{takes[2]}: {denied}")
    _refused(unprivileged("device", "import-profile", tmp_path / "profile.json", "--store", store),
             f"{tmp_path / 'profile.json'}: {denied}")
    _refused(unprivileged("device", "run", "--config", config, "--input", takes[0], "--store", store),
             f"{config}: {denied}")
    assert unprivileged("device", "list", "--store", store).stdout.count("word  four") == 1  # nothing lost


def test_a_home_the_user_may_not_write_asks_for_a_store(unprivileged, tmp_path):
    """No EDGE_META_STORE and a home the user may not write (nobody's is /nonexistent): say where to put the store."""
    home = tmp_path / "home"
    home.mkdir(mode=0o500)
    env = {"HOME": str(home), "EDGE_META_STORE": "", "XDG_DATA_HOME": ""}
    _refused(unprivileged("device", "list", env=env), f"{home / '.local'}", "EDGE_META_STORE")


def test_a_device_only_install_names_the_extra_each_command_needs(run_without_torch):
    recipe = Path(__file__).resolve().parents[1] / "export" / "recipes" / "default.toml"
    r = run_without_torch(f"""
        from edge_meta.cli import main
        for args in (["train", "--config", r"{recipe}"], ["pair", "a.pt", "b.pt", "--out", "c.pt"],
                     ["export", "a.pt", "--out", "bundle"]):
            print(main(args))
    """)
    assert r.stdout.split() == ["2", "2", "2"], r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("  fix: ")]
    assert [line.split("[")[1].split("]")[0] for line in lines] == ["train", "train", "export"], r.stderr
    assert r.stderr.count("needs the Python package 'torch'") == 3


def test_synth_names_a_missing_vocabulary_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "synth", "--vocabulary", tmp_path / "missing.txt",
                        "--out", tmp_path / "out"], capture_output=True, text=True, timeout=300)
    _refused(r, f"{tmp_path / 'missing.txt'}: no such vocabulary file", "vocab_en.txt")
