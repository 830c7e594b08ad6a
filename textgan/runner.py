"""A training run end to end: data, tokenizer, judge, the models' data (cross-lingual embeddings, mined
pairs), then `Trainer.fit`, curves at the end. The loop itself is trainer.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm

from . import checkpoint, distributed
from .config import Config, ConfigError, save_config
from .corpora import CorpusError, cache_dir, load_card
from .crosslingual import CrossLingual
from .data import encode_split, prepare_data
from .evaluate import task_directions
from .mining import mine_pairs, segmenter, training_pairs
from .models.judge import NgramJudge
from .rewards import StyleClassifier
from .tokenizer import PretrainedPieces, Tokenizer, domain_token, length_token, load_tokenizer
from .trainer import Trainer
from .training.teacher import TeacherMiner


def mixed_precision(cfg: Config) -> str:
    if cfg.train.mixed_precision != "auto":
        return cfg.train.mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def plot_curves(metrics_file: Path, png: Path) -> None:
    """Training curves (losses, dev style accuracy and self-BLEU) from metrics.jsonl into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_file.exists():          # a run of zero steps logged nothing
        return
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r if k not in ("step", "phase", "time")})
    loss_keys = [k for k in keys if k.startswith("train/") and not k.startswith("train/lr_")]   # (lr: not a loss)
    eval_keys = [k for k in keys if k.startswith("dev/")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, group, title in [(axes[0], loss_keys, "training losses"), (axes[1], eval_keys, "dev evaluation")]:
        for key in group:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*pts), label=key.split("/", 1)[1], marker="o" if group is eval_keys else None,
                    markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if group:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def crosslingual_embeddings(cfg: Config, run_dir: Path, tok: Tokenizer, train_ids, accelerator,
                            data_dir=None) -> CrossLingual | None:
    """The run's cross-lingual piece embeddings (train.crosslingual), learnt once by the main process into
    crosslingual.pt (+ .json: settings and, where CC-CEDICT is found, lexicon induction precision)."""
    method = cfg.train.crosslingual
    if method == "none":
        if cfg.train.bt_wordbyword_steps:
            raise ConfigError("train.bt_wordbyword_steps needs cross-lingual embeddings: set train.crosslingual")
        return None
    path = run_dir / "crosslingual.pt"
    if accelerator.is_main_process and not path.exists():
        tqdm.write(f"learning cross-lingual piece embeddings ({method})")
        xl = CrossLingual.learn(train_ids, cfg.generator.d_model, method, tok, data_dir=data_dir, log=tqdm.write)
        try:
            xl.info.update(xl.evaluate_bli(tok, data_dir))
        except CorpusError as err:
            xl.info["bli"] = f"not measured: {err}"
        tqdm.write(f"  {xl.info}")
        xl.save(path)
    accelerator.wait_for_everyone()
    return CrossLingual.load(path)


def bootstrap_pairs(cfg: Config, run_dir: Path, tok: Tokenizer, train_split, accelerator,
                    style: StyleClassifier | None = None, xl: CrossLingual | None = None) -> dict | None:
    """The mined pseudo-parallel pairs as ids, {target domain: [(source ids, target ids)]}, the ones the
    pair filters keep (mining.training_pairs; `style` is the reward's style classifier). Mined once by the
    main process into <run>/pairs/ (TSVs people can read, and mining.json); a resumed run reads them back.
    None without train.bootstrap (config.check refuses the settings that need it). The `wordbyword` miner
    translates through the run's cross-lingual lexicon `xl`."""
    if cfg.train.bootstrap == "none":
        return None
    out_dir = run_dir / "pairs"
    if accelerator.is_main_process and not (out_dir / "mining.json").exists():
        tqdm.write(f"mining pseudo-parallel pairs ({cfg.train.bootstrap})")
        texts = {d: list(train_split[d]["text"]) for d in cfg.data.domains}
        teacher = cfg.train.bootstrap == "teacher"         # a trained run's rewrites (training/teacher.py)
        mine_pairs(cfg.train.bootstrap, cfg.teacher if teacher else cfg.miner, texts, out_dir, log=tqdm.write,
                   progress_factory=lambda n, desc: tqdm(total=n, desc=desc, unit="sent", leave=False),
                   segment=segmenter(cfg.miner.units, tok), lexicon=xl,
                   miner=TeacherMiner(cfg.teacher, out_dir, accelerator.device, tqdm.write) if teacher else None)
    accelerator.wait_for_everyone()
    return training_pairs(cfg, mine_pairs(cfg.train.bootstrap, cfg.miner, {}, out_dir), tok, out_dir, style,
                          accelerator.device, accelerator.is_main_process, log=tqdm.write)


def pretrained_pieces(cfg: Config, run_dir: Path, train_split) -> None:
    """<run>/pieces/: the pretrained generator's tokenizer (generator.init) cut to the pieces of the training
    text (tokenizer.PretrainedPieces), with our domain (and length) tokens; says what it starts from."""
    from transformers import AutoTokenizer

    from .pretrained import resolve

    where = resolve(cfg.generator.init)
    hf = AutoTokenizer.from_pretrained(where)
    controls = [domain_token(d) for d in cfg.data.domains] + [length_token(k + 1) for k in range(cfg.data.length_tokens)]
    pieces = PretrainedPieces.build(hf, (t for d in cfg.data.domains for t in train_split[d]["text"]), controls)
    pieces.save(run_dir / "pieces")
    g = cfg.generator
    if g.arch == "causal":
        how = f"pretrained causal LM {g.init} ({where}), " + (f"LoRA r={g.lora_r}" if g.finetune == "lora"
                                                              else "full fine-tuning")
    else:
        how = (f"encoder-decoder, the encoder {g.init} ({where}), {g.decoder_layers} decoder layers "
               + ("started from its lowest layers" if g.warm_decoder else "from scratch"))
    print(f"generator: {how}" + (f", lowest {g.freeze_layers} layers frozen" if g.freeze_layers else "")
          + f"; vocabulary cut to the {len(pieces.kept)} of its {len(hf)} pieces the training text uses",
          file=sys.stderr)


def style_classifier(cfg: Config, run_dir: Path, tok: Tokenizer, train_ids, dev_split, accelerator,
                     selects: bool = False):
    """The reward's style classifier (rewards.StyleClassifier), trained once by the main process on the
    training sentences into <run>/style.safetensors (+ style.json: steps, dev accuracy); it also filters
    the mined pairs (train.pairs_min_style, pairs_min_style_real) and, when `selects`, judges style in the
    dev score that picks the kept checkpoint (train.select_by=style). None when nothing needs it."""
    from safetensors.torch import load_file, save_file

    t = cfg.train
    if not (t.style_reward or t.pairs_min_style or t.pairs_min_style_real or selects):
        return None
    domains = cfg.data.domains
    path = run_dir / "style.safetensors"
    # Its own random stream (init, dropout), so the generators start the same with or without it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(t.seed)
        model = StyleClassifier(cfg.discriminator, tok.vocab_size, len(domains), checkpoint.max_positions(cfg))
        device = accelerator.device
        if accelerator.is_main_process and not path.exists():
            tqdm.write(f"training the style classifier of the reward ({t.style_steps} steps)")
            model.to(device)
            with tqdm(total=t.style_steps, desc="style classifier", unit="step", dynamic_ncols=True) as bar:
                info = model.fit([train_ids[d] for d in domains], t.style_steps, t.style_batch_size, seed=t.seed,
                                 device=device, log=tqdm.write, progress=bar.update)
            dev_ids = encode_split(dev_split, tok, cfg.data.max_len)
            info.update(steps=t.style_steps, batch_size=t.style_batch_size, dev_accuracy=model.accuracy([dev_ids[d] for d in domains], device))
            tqdm.write(f"  style classifier: {info['dev_accuracy']:.1f}% on dev")
            save_file(model.state_dict(), str(path))
            (run_dir / "style.json").write_text(json.dumps(info, indent=2) + "\n")
    accelerator.wait_for_everyone()
    model.load_state_dict(load_file(str(path)))
    return model


def reranker_style(cfg: Config, run_dir: Path, train_split, dev_split, accelerator) -> None:
    """decode.semantic_style, train.semantic_style: the second style classifier of the reranker and the
    reward, over decode.encoder's embeddings (decoding.style.embedding_style), fitted by the main process when the
    run starts, so the run carries it."""
    if not (cfg.decode.semantic_style or cfg.train.semantic_style):
        return
    if accelerator.is_main_process:
        from .pretrained.encoder import Encoder
        from .decoding.style import embedding_style

        texts = [{d: list(split[d]["text"]) for d in cfg.data.domains} for split in (train_split, dev_split)]
        embedding_style(run_dir, Encoder.load(cfg.decode.encoder, device=accelerator.device), cfg.data.domains,
                        tuple(texts), cache_dir("embeddings"), log=tqdm.write)
    accelerator.wait_for_everyone()


def train(cfg: Config, runs_dir=None, name: str | None = None, resume: str | Path | None = None,
          data_dir=None, command: list[str] | None = None) -> Path:
    """Train a task end to end (or resume a run) and return its run directory. Under `accelerate launch`
    a lost process (a machine gone) stops the others with distributed.PeerLostError, which says which
    checkpoint is kept."""
    if cfg.train.dist_timeout <= 0:
        raise ConfigError(f"train.dist_timeout must be positive seconds, got {cfg.train.dist_timeout}")
    # cpu=True without CUDA is what makes Accelerate form a gloo process group from torchrun's variables.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(cfg),
                              gradient_accumulation_steps=cfg.train.grad_accum,
                              log_with="tensorboard", project_dir=str(runs_dir or "runs"),
                              kwargs_handlers=distributed.accelerator_handlers(cfg.train.dist_timeout))
    distributed.check_launch(accelerator.num_processes)
    where: dict = {}                                   # run_dir and trainer, once they exist

    def kept() -> str:
        if "run_dir" not in where:
            return "no run directory was made yet: launch it again"
        run_dir, trainer = where["run_dir"], where.get("trainer")
        if trainer is None or trainer.saved_step is None:
            return f"no checkpoint was written yet in {run_dir}: start the run again"
        return (f"the checkpoint of step {trainer.saved_step} is kept in {run_dir / 'state'}: relaunch every "
                f"machine with `textgan train --resume {run_dir}`")

    with distributed.watch(accelerator.num_processes, kept):
        return _train(cfg, accelerator, where, runs_dir, name, resume, data_dir, command)


def _train(cfg: Config, accelerator: Accelerator, where: dict, runs_dir, name, resume, data_dir, command) -> Path:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    set_seed(cfg.train.seed)
    train_split, dev_split = prepare_data(cfg, data_dir)   # every process loads (cached after the first)

    if resume:
        run_dir = Path(resume)
    else:
        holder = [None]
        if accelerator.is_main_process:
            run_dir = checkpoint.create_run_dir(cfg.task, runs_dir, name)
            checkpoint.write_run_info(run_dir, cfg, command or [], str(accelerator.device), accelerator.num_processes,
                                      accelerator.mixed_precision)
            if cfg.generator.init:
                pretrained_pieces(cfg, run_dir, train_split)
            else:
                g = cfg.generator
                print(f"generator: encoder-decoder from scratch (d={g.d_model}, {g.encoder_layers}+{g.decoder_layers} "
                      f"layers)" if not g.init_from else f"generator: encoder-decoder from {g.init_from}",
                      file=sys.stderr)
                texts = [t for d in cfg.data.domains for t in list(train_split[d]["text"])[: cfg.tokenizer.sample_lines]]
                Tokenizer.train(texts, run_dir / "tokenizer.model", cfg.data.domains, cfg.data.normalize,
                                cfg.tokenizer.vocab_size, cfg.tokenizer.model_type, cfg.tokenizer.character_coverage,
                                cfg.data.length_tokens)
            by_domain = {d: list(train_split[d]["text"]) for d in cfg.data.domains}
            NgramJudge(cfg.data.domains).fit(by_domain).save(run_dir / "judge.pt")
            if cfg.data.length_tokens:
                checkpoint.write_lengths(run_dir, by_domain)
            holder = [str(run_dir)]
        broadcast_object_list(holder)
        run_dir = Path(holder[0])
    where["run_dir"] = run_dir
    if not run_dir.is_dir():
        raise checkpoint.CheckpointError(f"{run_dir}, made by the main process, is not on this machine: "
                                         f"--runs-dir must be a directory every machine shares (NFS or the like)")
    accelerator.project_configuration.set_directories(str(run_dir))
    accelerator.project_configuration.logging_dir = str(run_dir)      # TensorBoard events: <run>/tensorboard/
    tok = load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize)
    judge = NgramJudge.load(run_dir / "judge.pt") if (run_dir / "judge.pt").exists() else None
    train_ids = encode_split(train_split, tok, cfg.data.max_len)
    dev_texts = {d: list(dev_split[d]["text"]) for d in cfg.data.domains}
    if cfg.generator.target_vocab and accelerator.is_main_process:
        checkpoint.write_target_vocab(run_dir, train_ids)
    accelerator.wait_for_everyone()
    xl = crosslingual_embeddings(cfg, run_dir, tok, train_ids, accelerator, data_dir)
    card = load_card(cfg.data.corpus)
    dev_references = "dev" in card.multiref or "dev" in card.references   # dev BLEU / ROUGE, not self-BLEU
    selects = cfg.train.keep_best and cfg.train.select_by == "style" and not dev_references
    style = style_classifier(cfg, run_dir, tok, train_ids, dev_split, accelerator, selects)
    reranker_style(cfg, run_dir, train_split, dev_split, accelerator)
    pairs = bootstrap_pairs(cfg, run_dir, tok, train_split, accelerator, style, xl)
    trainer = Trainer(cfg, run_dir, accelerator, tok, train_ids, dev_texts, judge, xl, pairs, style)
    where["trainer"] = trainer
    if dev_references:
        trainer.dev_pairs = {d.name: d for d in task_directions(cfg, data_dir, "dev") if d.references}
    if resume:
        trainer.load_checkpoint()
        trainer.apply_config_lrs()
        if accelerator.is_main_process:
            print(f"resuming {run_dir} at step {trainer.state.step}/{trainer.total}")
            save_config(cfg, run_dir / "config.yaml")       # overrides given on resume are part of the run
            metrics = run_dir / "metrics.jsonl"
            if metrics.exists():  # drop rows logged after the checkpoint we resume from
                keep = [r for r in metrics.read_text().splitlines() if r and json.loads(r)["step"] <= trainer.state.step]
                metrics.write_text("".join(r + "\n" for r in keep))
    accelerator.init_trackers("tensorboard")
    trainer.fit()
    accelerator.end_training()
    if accelerator.is_main_process:
        plot_curves(run_dir / "metrics.jsonl", run_dir / "training_curves.png")
    return run_dir
