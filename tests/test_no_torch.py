"""The device side never imports torch: proven with torch made unimportable in a fresh interpreter."""

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent("""
    import sys
    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed on this device")
    sys.meta_path.insert(0, BlockTorch())
""")


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def test_importing_the_device_runtime_does_not_import_torch(tmp_path):
    r = _run("""
        import edge_meta.device, edge_meta.device.cli, edge_meta.bench.fewshot, edge_meta.bench.dtw, edge_meta.cli
        import edge_meta.device.daemon, edge_meta.device.prompts, edge_meta.device.sources, edge_meta.device.profile_file
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        print("ok")
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_enroll_detect_and_the_daemon_run_without_torch(tmp_path, fsdd_dir):
    rec = fsdd_dir / "recordings"
    r = _run(f"""
        import numpy as np, soundfile as sf
        from edge_meta.cli import main
        store = "profiles.db"
        takes = [r"{rec}/4_theo_0.wav", r"{rec}/4_theo_1.wav", r"{rec}/4_theo_2.wav"]
        assert main(["device", "enroll-word", "four", "--from", *takes, "--store", store]) == 0
        voice = np.concatenate([sf.read(t)[0] for t in takes + takes])
        sf.write("voice.wav", voice, 8000)
        assert main(["device", "enroll-voice", "theo", "--from", "voice.wav", "--store", store]) == 0
        assert main(["device", "detect", r"{rec}/4_theo_9.wav", "--store", store, "--json"]) == 0
        assert main(["device", "run", "--input", r"{rec}/4_theo_9.wav", "--store", store, "--socket", "run/ev.sock"]) == 0
        assert main(["device", "export-profile", "theo.json", "--store", store]) == 0
        assert main(["device", "forget-user", "theo", "--yes", "--store", store]) == 0
        assert "torch" not in sys.modules
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('"word": "four"') == 2  # detect --json, then the daemon
