"""Static security checks over the source: nothing the device runs can unpickle, every checkpoint load refuses
pickled code, and no process is started through a shell. (File modes of the store, the profile export and the
event socket are checked where those files are made: tests/test_store.py, tests/test_store_faults.py,
tests/test_daemon.py; commands started without a shell are also run for real in tests/test_daemon.py.)"""

import ast
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


@lru_cache(maxsize=1)
def sources() -> list[tuple[Path, ast.AST]]:
    """The project's own Python outside tests (not the peers' virtual environments), parsed."""
    return [(p, ast.parse(p.read_text())) for d in ("edge_meta", "benchmarks", "scripts", "export")
            for p in (ROOT / d).rglob("*.py") if ".venvs" not in p.parts]


def calls(tree: ast.AST, modules: set[str], name: str):
    """Calls written ``module.name(...)``; `no_bare_imports` makes sure nobody writes just ``name(...)``."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
                and isinstance(node.func.value, ast.Name) and node.func.value.id in modules):
            yield node


def no_bare_imports(tree: ast.AST, path: Path, module: str, name: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            assert name not in {a.name for a in node.names}, f"{path}:{node.lineno} imports {module}.{name} bare"


def keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def device_modules() -> list[Path]:
    """Every edge_meta source file the device runtime, daemon and CLI import (found by importing them)."""
    code = ("import json, sys, edge_meta.device, edge_meta.device.cli, edge_meta.device.daemon, edge_meta.cli; "
            "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
            "if n.startswith('edge_meta') and getattr(m, '__file__', None))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    return [Path(p) for p in json.loads(out)]


def test_nothing_on_the_device_path_can_unpickle():
    modules = device_modules()
    assert any(p.name == "runtime.py" for p in modules) and len(modules) > 20
    for path in modules:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not {str(n).split(".")[0] for n in names} & PICKLERS, f"{path}:{node.lineno} imports a pickler"
            if isinstance(node, ast.Attribute) and node.attr in ("load", "loads") and isinstance(node.value, ast.Name):
                assert node.value.id not in PICKLERS, f"{path}:{node.lineno} unpickles"


def test_every_np_load_refuses_pickles():
    found = 0
    for path, tree in sources():
        no_bare_imports(tree, path, "numpy", "load")
        for call in calls(tree, {"np", "numpy"}, "load"):
            found += 1
            assert keyword(call, "allow_pickle") is False, f"{path}:{call.lineno}: np.load without allow_pickle=False"
    assert found >= 3  # the bundle's heads, the training cache, the benchmark caches


def test_every_torch_load_refuses_code():
    found = 0
    for path, tree in sources():
        no_bare_imports(tree, path, "torch", "load")
        for call in calls(tree, {"torch"}, "load"):
            found += 1
            assert keyword(call, "weights_only") is True, f"{path}:{call.lineno}: torch.load without weights_only=True"
    assert found >= 3


def test_no_process_is_started_through_a_shell():
    for path, tree in sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                assert keyword(node, "shell") is not True, f"{path}:{node.lineno} starts a shell"
                f = node.func
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "os":
                    assert f.attr not in ("system", "popen"), f"{path}:{node.lineno} uses os.{f.attr}"
