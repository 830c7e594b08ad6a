"""The run directory: everything inference needs, plus the state to resume training.

    runs/<task>/<name>/
      config.yaml            fully resolved config
      run.json               command line, seed, commit, library versions, machine
      tokenizer.model        SentencePiece; or pieces/: a pretrained generator's tokenizer, cut to the corpus
      generator/             save_pretrained (safetensors); or generator_ab/ + generator_ba/
      discriminator.safetensors
      judge.pt               the independent n-gram style judge used in dev evaluation
      lengths.json           median words per domain: the default request of length control
      metrics.jsonl, training_curves.png, tensorboard/
      state/                 accelerate save_state, for --resume
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from .config import Config, ConfigError, config_from_dict, save_config
from .models.discriminator import DomainCritic
from .models.generator import Generator, build_generator
from .pretrained import quiet_loading
from .provenance import commit
from .tokenizer import Tokenizer, load_tokenizer


class CheckpointError(RuntimeError):
    """A run directory that is missing or unreadable; the message names the file."""


def runs_root(runs_dir: str | Path | None = None) -> Path:
    return Path(runs_dir or os.environ.get("TEXTGAN_RUNS", "runs"))


def create_run_dir(task: str, runs_dir=None, name: str | None = None) -> Path:
    base = runs_root(runs_dir) / task
    name = name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = base / name
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = base / f"{name}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def latest_run(task: str, runs_dir=None) -> Path:
    """The newest run of `task` that has a saved generator."""
    base = runs_root(runs_dir) / task
    runs = [p.parent for p in base.glob("*/config.yaml") if any(p.parent.glob("generator*"))]
    if not runs:
        raise CheckpointError(f"no trained run of task '{task}' under {base}; "
                              f"train one with `textgan train --task {task}` or pass --model DIR")
    return max(runs, key=lambda p: p.stat().st_mtime)


def write_run_info(run_dir: Path, cfg: Config, command: list[str], device: str, processes: int,
                   mixed_precision: str = "no") -> None:
    import accelerate
    import datasets
    import sentencepiece
    import transformers

    save_config(cfg, run_dir / "config.yaml")
    info = {
        "command": command, "seed": cfg.train.seed, "commit": commit(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": device, "processes": processes, "mixed_precision": mixed_precision,
        "machine": platform.platform(), "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__, "datasets": datasets.__version__,
                     "sentencepiece": sentencepiece.__version__},
    }
    if cfg.train.bootstrap == "teacher":             # a student (textgan distill): the run it learnt from
        info["teacher"] = str(cfg.teacher.run)
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")


def write_lengths(run_dir: Path, texts: dict[str, list[str]]) -> None:
    """Median words per domain of the training text, the length a transfer asks for by default."""
    median = {d: sorted(len(t.split()) for t in lines)[len(lines) // 2] if lines else 1 for d, lines in texts.items()}
    (Path(run_dir) / "lengths.json").write_text(json.dumps({"median_words": median}, indent=2) + "\n")


def default_words(run_dir: Path) -> dict[str, int]:
    path = Path(run_dir) / "lengths.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} has length control but no lengths.json")
    return json.loads(path.read_text())["median_words"]


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written directory into place, so a kill never leaves a half-written one as `final`."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: Path) -> None:
    """Undo what a kill between replace_dir's two renames left: `final` gone, its previous version at .old."""
    old = final.with_name(final.name + ".old")
    if not final.exists() and old.is_dir():
        old.rename(final)


def generator_dirs(cfg: Config) -> list[str]:
    return ["generator"] if cfg.generator.shared else ["generator_ab", "generator_ba"]


def save_models(run_dir: Path, cfg: Config, generators: list[Generator], critic: DomainCritic) -> None:
    for name, g in zip(generator_dirs(cfg), generators):
        tmp = run_dir / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        g.exportable().save_pretrained(tmp)
        replace_dir(tmp, run_dir / name)
    tmp_file = run_dir / "discriminator.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in critic.state_dict().items()}, str(tmp_file))
    tmp_file.replace(run_dir / "discriminator.safetensors")


RUN_FILES = ("config.yaml", "run.json", "tokenizer.model", "judge.pt", "lengths.json")
RUN_DIRS = ("pieces",)              # a pretrained generator's tokenizer (tokenizer.PretrainedPieces)


def snapshot(run_dir: Path, name: str, cfg: Config, generators: list[Generator], critic: DomainCritic) -> Path:
    """The models as they are now, as a run directory of their own (<run>/<name>/, with the run's config,
    tokenizer and judge) that transfer, evaluate and bench_quality.py --run read like any run."""
    out = Path(run_dir) / name
    out.mkdir(exist_ok=True)
    for file in RUN_FILES:
        if (Path(run_dir) / file).exists():
            shutil.copyfile(Path(run_dir) / file, out / file)
    for folder in RUN_DIRS:
        if (Path(run_dir) / folder).is_dir():
            shutil.copytree(Path(run_dir) / folder, out / folder, dirs_exist_ok=True)
    save_models(out, cfg, generators, critic)
    return out


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved config a run was trained with (its config.yaml)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a textgan run directory (no config.yaml)")
    try:
        return config_from_dict(yaml.safe_load(path.read_text()))
    except Exception as err:  # noqa: BLE001 - say which file
        raise CheckpointError(f"cannot read {path}: {type(err).__name__}: {err}") from err


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", generators: bool = True):
    """(cfg, tokenizer, generators, critic) of a run; generators[0] maps a->b (and everything if shared);
    with generators=False the list is empty (another engine decodes)."""
    from transformers import AutoModelForCausalLM, BartForConditionalGeneration

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    kind = AutoModelForCausalLM if cfg.generator.arch == "causal" else BartForConditionalGeneration
    try:
        tok = load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize)
        models = []
        for name in generator_dirs(cfg) if generators else []:
            with quiet_loading():
                model = kind.from_pretrained(run_dir / name)
            models.append(wrap_generator(model, cfg, tok, run_dir).to(device).eval())
        critic = DomainCritic(cfg.discriminator, tok.vocab_size, len(cfg.data.domains), max_positions(cfg))
        critic.load_state_dict(load_file(str(run_dir / "discriminator.safetensors")))
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure here means an unusable run dir; say which
        raise CheckpointError(f"cannot load the run in {run_dir}: {type(err).__name__}: {err}") from err
    return cfg, tok, models, critic.to(device).eval()


def max_positions(cfg: Config) -> int:
    """Longest sequence a model must read: an input or a generated sentence, EOS included."""
    return max(cfg.data.max_len, cfg.train.max_gen_len) + 1


def write_target_vocab(run_dir: Path, train_ids: dict[str, list[list[int]]]) -> None:
    """<run>/target_vocab.json, {domain: piece ids banned when writing into it}: the pieces that occur in
    another domain's training ids and never in its own (generator.target_vocab). Pieces of neither stay
    allowed. Written once, so a resumed run keeps the masks its model learnt under."""
    path = run_dir / "target_vocab.json"
    if path.exists():
        return
    seen = {d: set(i for s in seqs for i in s) for d, seqs in train_ids.items()}
    banned = {d: sorted(set().union(*(seen[o] for o in seen if o != d)) - seen[d]) for d in seen}
    path.write_text(json.dumps(banned) + "\n")


def read_target_vocab(run_dir: Path, tok: Tokenizer) -> dict[int, list[int]]:
    """{domain token id: banned piece ids} from <run>/target_vocab.json."""
    path = Path(run_dir) / "target_vocab.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: generator.target_vocab needs the masks written at the start of "
                              "training")
    return {tok.domain_ids[d]: ids for d, ids in json.loads(path.read_text()).items()}


def wrap_generator(model, cfg: Config, tok: Tokenizer, run_dir: Path | None = None) -> Generator:
    """A Hugging Face model as a Generator, with the run's length control, extraction, target vocabulary
    (if any; the target vocabulary is read from `run_dir`) and run guard."""
    unknown = sorted(set(cfg.generator.extract_to) - set(tok.domains))
    if unknown:
        raise ConfigError(f"generator.extract_to names '{unknown[0]}', which is not a domain of this task "
                          f"({', '.join(tok.domains)})")
    extract_to = [tok.domain_ids[d] for d in cfg.generator.extract_to]
    word_start = tok.word_starts() if tok.length_ids or extract_to else None
    banned = read_target_vocab(run_dir, tok) if cfg.generator.target_vocab else None
    kind = Generator
    if cfg.generator.arch == "causal":
        from .models.causal import CausalGenerator as kind
    return kind(model, tok.length_ids, word_start, words_left=cfg.generator.words_left, extract_to=extract_to,
                banned=banned, max_run=cfg.generator.max_run)


def new_models(cfg: Config, tok: Tokenizer, run_dir: Path | None = None) -> tuple[list[Generator], DomainCritic]:
    """Fresh generators (from scratch, or from the pretrained LM or encoder of generator.init) and discriminator."""
    count = 1 if cfg.generator.shared else 2
    if cfg.generator.arch == "causal":
        from .models.causal import build_causal_lm

        models = [build_causal_lm(cfg.generator, tok.sp) for _ in range(count)]
    elif cfg.generator.init:
        from .models.warmstart import bart_from_encoder, load_encoder

        bert = load_encoder(cfg.generator.init)
        models = [bart_from_encoder(cfg.generator, tok.sp.source_rows(), max_positions(cfg), bert)
                  for _ in range(count)]
    else:
        models = [build_generator(cfg.generator, tok.vocab_size, max_positions(cfg)) for _ in range(count)]
    generators = [wrap_generator(model, cfg, tok, run_dir) for model in models]
    critic = DomainCritic(cfg.discriminator, tok.vocab_size, len(cfg.data.domains), max_positions(cfg))
    return generators, critic
