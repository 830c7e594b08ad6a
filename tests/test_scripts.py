"""Every script in scripts/ imports: they share helpers (textgan.provenance, bench_speed), and a helper
moved or renamed must not leave a benchmark that fails only when someone runs it. And what a script changes
in committed results (scripts/backfill_decode.py) on a copy of a results folder."""

import importlib.util
import json
import sys

import pytest
import yaml

from conftest import ROOT

SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
HELPERS = {"tables_bench"}           # modules other scripts import (tables.py's benchmark tables), no main()


def load_script(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    name = f"script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_script_imports(path, monkeypatch):
    module = load_script(path, monkeypatch)
    assert path.stem in HELPERS or callable(getattr(module, "main", None)), f"{path.name} has no main()"


def test_backfill_decode_records_the_plan_once(tmp_path, monkeypatch):
    from textgan.config import load_config, save_config

    backfill = load_script(ROOT / "scripts" / "backfill_decode.py", monkeypatch).backfill
    folder = tmp_path / "results" / "toy" / "old"
    folder.mkdir(parents=True)
    save_config(load_config("toy", "cpu"), folder / "config.yaml")
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["train"]["gone_option"] = 1                        # a key of an older config that today's does not know
    (folder / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    command = "python scripts/bench_quality.py --task toy --run runs/toy/old --name old --beam 2 eval.lm_steps=3"
    (folder / "metrics.json").write_text(json.dumps({"task": "toy", "command": command}, indent=2) + "\n")

    assert backfill(folder, tmp_path).startswith("backfilled")
    report = json.loads((folder / "metrics.json").read_text())
    assert list(report) == ["task", "command", "decode", "decode_plan", "decode_source"]
    assert report["decode_plan"]["search"]["beam"] == 2 and report["decode_plan"]["engine"] == "torch"
    assert "backfill_decode.py" in report["decode_source"] and "train.gone_option" in report["decode_source"]
    written = (folder / "metrics.json").read_text()
    assert backfill(folder, tmp_path).startswith("unchanged") and (folder / "metrics.json").read_text() == written
