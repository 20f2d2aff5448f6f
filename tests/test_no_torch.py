"""The device side never imports torch: proven with torch made unimportable in a fresh interpreter."""


def test_importing_the_device_runtime_does_not_import_torch(run_without_torch):
    r = run_without_torch("""
        import edge_meta.device, edge_meta.device.cli, edge_meta.bench.fewshot, edge_meta.bench.dtw, edge_meta.cli
        import edge_meta.device.daemon, edge_meta.device.wyoming_service, edge_meta.device.prompts, edge_meta.device.sources, edge_meta.device.profile_file
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_enroll_detect_and_the_daemon_run_without_torch(run_without_torch, fsdd_dir):
    rec = fsdd_dir / "recordings"
    r = run_without_torch(f"""
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
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('"word": "four"') == 2  # detect --json, then the daemon
