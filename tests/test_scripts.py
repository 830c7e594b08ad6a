"""Every script in scripts/ imports: they share helpers (textgan.provenance, bench_speed), and a helper
moved or renamed must not leave a benchmark that fails only when someone runs it."""

import importlib.util
import sys

import pytest

from conftest import ROOT

SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
HELPERS = {"tables_bench"}           # modules other scripts import (tables.py's benchmark tables), no main()


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_script_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    name = f"script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)          # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert path.stem in HELPERS or callable(getattr(module, "main", None)), f"{path.name} has no main()"
