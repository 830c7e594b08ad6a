"""Self-training rounds (`textgan refine RUN`) and distillation into a student (`textgan distill RUN`): both
learn from the pairs a trained run writes (teacher.py, train.bootstrap=teacher).

refine: a copy of RUN (runs/<task>/<name>) trained on, round by round; round k
    1. the copy's kept model (the best on dev so far) rewrites the k-th slice of `lines` training sentences
       per domain with its decode (by default its own decode section; teacher.candidates, teacher.guidance),
    2. the pair filters keep the rewrites its style classifier puts in the target domain (pairs_min_style)
       and from which its back generator rebuilds the input (pairs_min_score on r_content),
    3. `steps` more steps of maximum likelihood on them, both ways as train.pairs_targets says (the
       bootstrap phase, continued from the last checkpoint at the learning rate train.lr_g), the dev
       evaluation every `eval_every` steps keeping the best greedy model (train.keep_best, best.json);
   rounds stop early when one does not raise the dev score. <copy>/refine.json records every round; the
   pairs the copy learnt from before round k are kept in <copy>/rounds/<k-1>/. Killed at any point, the
   same command goes on (the teacher's rewrites are written a chunk at a time; training resumes from its
   checkpoint).
distill: a new run of RUN's task (a preset: by default the small from-scratch encoder-decoder) whose
   bootstrap pairs are RUN's rewrites of `lines` training sentences per domain (sequence-level knowledge
   distillation); run.json names its teacher.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from ..checkpoint import CheckpointError, load_run_config, runs_root
from ..config import check, load_config, merge, parse_override, save_config
from ..runner import train

RECORD = "refine.json"


def last_step(cfg) -> int:
    """The step a run's config ends at (every phase's steps)."""
    t = cfg.train
    return t.ae_steps + t.bootstrap_steps + t.d_steps + t.adv_steps


def dev_score(run_dir: Path) -> float | None:
    best = Path(run_dir) / "best.json"
    return json.loads(best.read_text())["score"] if best.exists() else None


def new_record(run: Path, command: list[str] | None) -> dict:
    """refine.json before its first round: the teacher, the command, the dev score to beat."""
    return {"teacher": str(run), "command": command or [], "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "dev_score_before": dev_score(run), "rounds": []}


def start_copy(run: Path, out: Path, command: list[str] | None) -> dict:
    """Copy a trained run to `out` (not its TensorBoard logs) and start its refine.json."""
    if not (run / "state").is_dir():
        raise CheckpointError(f"{run} has no training state (state/) to continue from: refine needs a run "
                              f"trained by this version of textgan")
    if out.exists():
        raise CheckpointError(f"{out} exists and was not made by `textgan refine` (no {RECORD}): give another --name")
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("tensorboard", "after-*", "rounds", RECORD))
    info = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    info["refined_from"] = str(run)
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return new_record(run, command)


def round_config(out: Path, record: dict, entry: dict, lines: int, eval_every: int, overrides) -> object:
    """The copy's config for one round: its own settings (with the decode the rounds' teacher uses), the
    teacher section pointing at itself, the bootstrap phase extended to the round's last step (no
    adversarial phase after it), then `overrides`."""
    cfg = load_run_config(out)
    if "decode_of_rounds" in record:         # more rounds after a finished refine: the teacher's decode again
        merge(cfg, {"decode": record["decode_of_rounds"]})
    merge(cfg, {"train": {"bootstrap": "teacher", "bootstrap_steps": entry["to_step"] - cfg.train.ae_steps,
                          "d_steps": 0, "adv_steps": 0, "ae_eval_every": eval_every, "ckpt_every": eval_every},
                "teacher": {"run": str(out), "lines": lines, "offset": entry["offset"]}})
    for text in overrides:
        merge(cfg, parse_override(text))
    check(cfg)
    return cfg


def refine(run, rounds: int = 2, lines: int = 1000, steps: int = 120, eval_every: int = 40,
           name: str | None = None, runs_dir=None, overrides=(), data_dir=None, command=None, log=print,
           in_place: bool = False) -> Path:
    """Self-training rounds on a copy of `run` (module docstring), or on `run` itself (`in_place`: the rounds
    of train.rounds); returns the refined run's directory."""
    run = Path(run)
    if rounds < 1 or lines < 1 or steps < 1 or eval_every < 1:
        raise ValueError(f"rounds, lines, steps and eval_every must be positive; got {rounds}, {lines}, {steps}, "
                         f"{eval_every}")
    task = load_run_config(run).task
    out = run if in_place else runs_root(runs_dir) / task / (name or f"{run.name}-refined")
    record_file = out / RECORD
    if record_file.exists():
        record = json.loads(record_file.read_text())
    elif in_place:
        record = new_record(run, command)
    else:
        record = start_copy(run, out, command)
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    for k in range(rounds):
        if k < len(record["rounds"]) and record["rounds"][k].get("done"):
            if not record["rounds"][k]["improved"]:
                break
            continue
        if k == len(record["rounds"]):       # a new round: the pairs learnt from so far are put aside
            start = last_step(load_run_config(out))
            record["rounds"].append({"round": k + 1, "from_step": start, "to_step": start + steps,
                                     "offset": k * lines, "lines": lines, "dev_score_before": dev_score(out)})
            if (out / "pairs").exists():
                (out / "rounds").mkdir(exist_ok=True)
                (out / "pairs").rename(out / "rounds" / str(k))
            record_file.write_text(json.dumps(record, indent=2) + "\n")
        entry = record["rounds"][k]
        log(f"refine round {k + 1}/{rounds}: steps {entry['from_step']} -> {entry['to_step']}, training lines "
            f"{entry['offset']}-{entry['offset'] + lines} of each domain")
        started = time.time()
        cfg = round_config(out, record, entry, lines, eval_every, overrides)
        save_config(cfg, out / "config.yaml")     # the teacher (the copy itself) decodes as the overrides say
        train(cfg, runs_dir=runs_dir, resume=out, data_dir=data_dir, command=command)
        mining = json.loads((out / "pairs" / "mining.json").read_text())
        entry.update(done=True, dev_score_after=dev_score(out), seconds=round(time.time() - started, 1),
                     teacher=mining.get("report", {}), kept=json.loads((out / "pairs" / "kept.json").read_text()))
        before = entry["dev_score_before"]
        entry["improved"] = before is None or (entry["dev_score_after"] or 0) > before
        record_file.write_text(json.dumps(record, indent=2) + "\n")
        log(f"refine round {k + 1}: dev score {before} -> {entry['dev_score_after']}")
        if not entry["improved"]:
            log(f"round {k + 1} did not raise the dev score: no more rounds (the kept model is the best so far)")
            break
    finish(out, record)
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return out


def finish(out: Path, record: dict) -> None:
    """The refined copy decodes greedily by default (decode.candidates 1, no ladder, no guidance, no retrieved
    or beam candidates): its rounds were chosen on dev by that decode, the point of refining is that it carries
    the teacher's quality, and the CTranslate2 engine can run it. The decode section the rounds' teacher used
    is kept in refine.json (decode_of_rounds) and can be asked for again with decode.KEY=VALUE overrides."""
    cfg = load_run_config(out)
    if "decode_of_rounds" not in record:
        record["decode_of_rounds"] = dataclasses.asdict(cfg.decode)
    merge(cfg, {"decode": {"candidates": 1, "guidance": 0.0, "guidance_candidates": [], "retrieve": 0, "nbest": 0}})
    save_config(cfg, out / "config.yaml")


def train_with_rounds(cfg, runs_dir=None, name: str | None = None, resume=None, data_dir=None,
                      command=None) -> Path:
    """`textgan train`: the run (runner.train), then its train.rounds self-training rounds in place."""
    run_dir = train(cfg, runs_dir=runs_dir, name=name, resume=resume, data_dir=data_dir, command=command)
    t = cfg.train
    if t.rounds:
        refine(run_dir, t.rounds, t.round_lines, t.round_steps, t.round_eval_every, runs_dir=runs_dir,
               data_dir=data_dir, command=command, in_place=True)
    return run_dir


def distill(run, preset: str = "cpu-scratch", lines: int = 20000, name: str | None = None, runs_dir=None,
            overrides=(), data_dir=None, command=None) -> Path:
    """Train a student run (`preset` of `run`'s task) on `run`'s rewrites (module docstring). By default the
    teacher writes one greedy rewrite each (teacher.candidates=1, at its own guidance); `overrides` may ask
    for its whole decode (teacher.candidates=0) or the fast engine (teacher.engine=ctranslate2)."""
    run = Path(run)
    if lines < 1:
        raise ValueError(f"lines must be positive; got {lines}")
    task = load_run_config(run).task
    cfg = load_config(task, preset, ["train.bootstrap=teacher", f"teacher.run={run}", f"teacher.lines={lines}",
                                     "teacher.candidates=1", *overrides])
    return train(cfg, runs_dir=runs_dir, name=name or f"{run.name}-student", data_dir=data_dir, command=command)
