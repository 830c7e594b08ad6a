"""Typed configuration: dataclasses with defaults, YAML per task, dotted overrides.

A config is resolved in this order (later wins):

    dataclass defaults -> configs/<task>.yaml -> its `presets.<preset>` section -> `key=value` overrides

Unknown keys and wrong types are errors that name the key and the valid ones (in the spirit of
minGPT's `CfgNode.merge_from_args`), so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


QUANTIZATIONS = ("int8", "int16", "float32")   # CTranslate2 weights textgan exports (fast.py)
# Sampling temperatures decoding accepts (decode.temperature, --temperature, the server's `temperature`).
# Below 0.01 the logits divided by it overflow float32 to inf ("probability tensor contains inf/nan").
TEMPERATURE_RANGE = (0.01, 10.0)


class ConfigError(ValueError):
    """A bad key or value in a config file or override. The message is one line."""


@dataclass
class DataConfig:
    corpus: str = "yelp"                 # corpus card name (corpora/<corpus>.yaml)
    test_corpus: str = ""                # card whose `test` split is the task's test set ("" = corpus)
    domains: list[str] = field(default_factory=lambda: ["neg", "pos"])
    normalize: str = "ptb_lower"         # none | ptb_lower | zh | gigaword
    max_len: int = 32                    # tokens per sentence after SentencePiece (longer: truncated)
    max_train_lines: int = 0             # per domain; 0 = all
    extra_train: list[str] = field(default_factory=list)   # more corpora whose train split joins the same domains
    word_drop: float = 0.1               # denoising noise (Lample et al. 2018): drop prob
    word_blank: float = 0.1              # ... blank-out prob
    shuffle_k: float = 3.0               # ... local shuffle window (0 = off)
    bucket_batches: int = 50             # batches per length-sorted bucket
    length_tokens: int = 0               # K > 0: length control, <len_1>..<len_K> in the encoder input ask for
                                         # that many words (longer: <len_K>); see Generator.condition
    length_mix: float = 0.0              # with length control: share of denoising inputs followed by the next
                                         # sentence of the batch, so the input's length no longer gives away the
                                         # output's and the <len_k> request must be read (StepTools.noisy, training/common.py)


@dataclass
class TokenizerConfig:
    vocab_size: int = 8000
    model_type: str = "unigram"          # unigram | bpe
    character_coverage: float = 1.0      # 0.9995 suits CJK
    sample_lines: int = 200_000          # per domain, for training the SentencePiece model


@dataclass
class GeneratorConfig:
    shared: bool = True                  # one generator for every direction; False = g_ab and g_ba
    # seq2seq: an encoder-decoder (BART-style, from scratch or init_from). causal: a pretrained decoder-only
    # LM (`init`) prompted with the source and the target-domain token (models/causal.py); it brings its
    # tokenizer, cut to the corpus' pieces (tokenizer.PretrainedPieces); the size settings below do not apply
    arch: str = "seq2seq"
    init: str = ""                       # causal: the pretrained LM, a packaged name (smollm2), a local dir
                                         # or a model id (pretrained/); seq2seq: a pretrained BERT-style
                                         # encoder (e5: multilingual-e5-small) that starts the encoder, its
                                         # vocabulary and embeddings (models/warmstart.py); "": from scratch
    warm_decoder: bool = True            # seq2seq with init: the decoder's layers start from the encoder's lowest
                                         # (BERT2BERT, Rothe et al. 2020), only cross-attention from random
    warm_cross: bool = False             # ... and the cross-attention from the same layer's self-attention
    finetune: str = "lora"               # causal: lora (peft adapters on every projection; embeddings train)
                                         # | full (every weight)
    lora_r: int = 16
    lora_alpha: float = 32.0
    freeze_layers: int = 0               # causal: the lowest N transformer layers and the embeddings stay as
                                         # they start (the backward pass stops at layer N); seq2seq with init:
                                         # the lowest N encoder layers and its positions
    init_from: str = ""                  # local dir of a pretrained HF encoder-decoder (random init if "")
    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    words_left: bool = False             # with data.length_tokens: the decoder also reads how many words are
                                         # left to write at each step (models/generator.words_left_encoding)
    extract_to: list[str] = field(default_factory=list)  # domains written by extraction: decodes into them
                                         # write only subsequences of the source's words (constrain.py)
    target_vocab: bool = False           # decodes into a domain never write a piece seen only in the other
                                         # domains' training text (translation: no copying; <run>/target_vocab.json)
    max_run: int = 0                     # m > 0: no decode writes one piece more than m times in a row, unless its
                                         # source has a longer run of that piece (a guard against stuttering,
                                         # "太太太太"; models/generator.py `run_guard`); 0 = off


@dataclass
class DiscriminatorConfig:
    mode: str = "multiclass"             # multiclass (k real domains + fake) | binary (one D per domain)
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1


@dataclass
class MinerConfig:
    """Settings of the bootstrap phase's miners (textgan/mining/); the miner is train.bootstrap."""
    max_ngram: int = 4                   # template: style markers are 1..max_ngram-grams of units
    salience: float = 15.0               # ... an n-gram is a marker of v when s(u, v) >= salience (Li et al. 2018)
    smoothing: float = 1.0               # ... lambda in s(u, v) = (f(u, v) + lambda) / (f(u, v') + lambda)
    min_count: int = 5                   # ... and it occurs at least this often in v
    neighbours: int = 5                  # retrieval: candidates searched for a target that has markers
    max_df: float = 0.1                  # retrieval: units in more than this share of sentences are not indexed
    units: str = "words"                 # what n-grams are made of: words (CJK: characters) | pieces (SentencePiece)
    fill: str = "aligned"                # template: slots get the neighbour's markers in order (retrieved, Li et
                                         # al.) or each marker's most frequent counterpart over the corpus (aligned)
    # extract (summarization, mining/extract.py): J = mean log S_LM(headline trigrams) + sim_weight * log cos_idf(s, article)
    sim_weight: float = 12.0             # ... gamma; the best of 0.5-40 on 300 dev articles (results/summarization/extract-search-dev)
    lm_order: int = 3                    # ... the headline n-gram model's order (wordbyword: the target piece model's)
    search_steps: int = 30               # ... hill-climbing steps at most (it stops earlier at a local optimum)
    restarts: int = 0                    # ... extra starts from random subsets (the first starts from the lead)
    max_sources: int = 0                 # extract, wordbyword: sentences mined per direction (the first ones; 0: all)
    words: int = 8                       # ... summary length of the search alone as a system (`transfer`)
    # ... a last step scored by a pretrained causal LM reading the article (mining/extract.py, J_LM): "" = off, or a
    # packaged model (smollm2), a local directory or a model id; the rescore_top best neighbours by J compete
    rescore_lm: str = ""
    rescore_top: int = 24
    rescore_weight: float = 0.5
    rescore_prompt: str = "Article: {article}\nHeadline:"
    # wordbyword (translation, Kim et al. 2018): sum log q(y_i | x_i) + lm_weight * log S_LM(y_i | y_<i)
    candidates: int = 10                 # ... target pieces considered for each source piece (CSLS nearest)
    temperature: float = 0.1             # ... q = softmax(CSLS / temperature) over them
    lm_weight: float = 0.5               # ... weight of the target-language n-gram model (0.5, 10 candidates: best on dev)
    beam: int = 5                        # ... paths kept
    # mine (translation, mining/margin.py): mutual nearest neighbours by margin score under a pretrained encoder
    encoder: str = "e5"                  # ... packaged multilingual-e5-small, a local directory or a model id
    margin_k: int = 4                    # ... k of the margin's neighbourhoods (Artetxe & Schwenk 2019)
    mine_candidates: int = 16            # ... nearest by cosine ranked by margin
    min_margin: float = 1.0              # ... pairs below this margin are not mined


@dataclass
class TrainConfig:
    estimator: str = "soft"              # soft | gumbel | reinforce
    seed: int = 1234
    batch_size: int = 64
    grad_accum: int = 1
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    lr_g_adv: float = 0.0                # generator lr in the adversarial phase (0: keep lr_g); lower
                                         # lets D keep up with G instead of being fooled by degenerate text
    warmup_steps: int = 200              # linear lr warmup of the generator
    d_warmup_steps: int = 20             # ... of the discriminator, from its first step (phase 2)
    grad_clip: float = 1.0
    ae_steps: int = 1000                 # phase 1: denoising autoencoder
    d_steps: int = 200                   # phase 2: discriminator pretraining
    adv_steps: int = 2000                # phase 3: adversarial cycle
    d_per_g: int = 1                     # discriminator steps per generator step in phase 3
    lambda_self: float = 0.25
    lambda_cycle: float = 0.5
    lambda_adv: float = 1.0              # 0: no adversary (denoising + on-the-fly back-translation)
    # soft/gumbel: backpropagate the cycle loss into the forward generator through the relaxed fake
    # (Style Transformer). False = back-translation: the back generator reads the fake's ids and only it
    # learns from the cycle (measured: the through-fake gradient swamps the autoencoder, results/sentiment).
    cycle_through_fake: bool = False
    # How G's decoding loop feeds its own output back during training. hard: each step reads the
    # chosen token and the differentiable outputs come from one teacher-forced pass (Generator.relax);
    # soft: the relaxed distribution is fed back and gradients run through the whole loop (slower).
    feedback: str = "hard"
    # A shared generator runs both directions as one batch (each row with its own domain token): half
    # the passes, twice as large, the same losses. Measured slower on 2 CPU cores (adversarial step 0.75x,
    # results/speed/cpu-2t-training), hence off; meant for GPUs, where it is not measured yet.
    fuse_directions: bool = False
    label_smoothing: float = 0.1
    tau_start: float = 1.0               # temperature of soft/gumbel/sampled outputs, annealed
    tau_end: float = 0.1
    straight_through: bool = False       # gumbel: hard one-hot forward, soft backward
    gamma: float = 0.9                   # reinforce: discount of dense rewards
    baseline: str = "ema"                # reinforce: ema | greedy
    ema_decay: float = 0.95
    cycle_reward: float = 0.0            # reinforce: weight w_c of the content sequence reward (rewards.py)
    content_reward: str = "cycle"        # ... what measures content: cycle (log p(x | y) of the back generator) or
                                         # a sentence encoder's cosine of x and y (e5: packaged multilingual-e5-small;
                                         # or a local directory or model id)
    style_reward: float = 0.0            # reinforce: weight w_s of the style classifier's sequence reward (rewards.py)
    semantic_style: bool = False         # ... r_style = min(the style classifier, the reranker's classifier over
                                         # decode.encoder's embeddings: decoding.style.EmbeddingStyle, decode.semantic_style)
    reward_mix: str = "sum"              # sum: w_s r_style + w_c log r_content | harmonic: their weighted harmonic mean
    style_steps: int = 300               # training steps of the style classifier (before phase 1), when the
                                         # reward, the pair filter or checkpoint selection (select_by) needs it
    style_batch_size: int = 64           # ... its batch (its own: a causal generator's small batch starves it)
    # Bootstrap phase (between the autoencoder and the discriminator pretraining): maximum likelihood on
    # pseudo-parallel pairs mined from the unpaired training text by the miner `bootstrap` (textgan/mining/;
    # settings in the miner section), both ways (real -> pseudo target, pseudo target -> real), plus L_self.
    bootstrap: str = "none"              # none | template | retrieve | extract (summarization) | wordbyword | mine
                                         # (translation) | teacher (a trained run's rewrites: the teacher section)
    bootstrap_steps: int = 0
    bootstrap_self: float = 0.5          # weight of L_self in the bootstrap phase (0: pairs only, half the step's cost)
    lambda_pairs: float = 0.0            # weight of the mined pairs' NLL in the adversarial G loss (keeps G near them)
    # Keep only mined pairs whose pseudo target the reward's style classifier puts in the target domain
    # with at least this probability (0: keep all). Trains the classifier (style_steps) even without style_reward.
    pairs_min_style: float = 0.0
    pairs_min_score: float = 0.0         # ... and whose miner score is at least this (template/retrieve: the
                                         # retrieval cosine of the neighbour whose markers filled the slots; 0: off)
    pairs_min_style_real: float = 0.0    # ... and whose real sentence x the classifier puts in its own domain with
                                         # at least this probability (0: off): with pairs_targets=real, the
                                         # targets the generator learns to write are clearly of their style
    # Which halves of each mined pair (x, y~) are trained on: both (x -> y~ and y~ -> x) | real (y~ -> x
    # alone: every target is a real sentence, so the generator never learns to write the miner's artifacts,
    # the principle of back-translation; half the pairs per step)
    pairs_targets: str = "both"
    # Cross-lingual piece embeddings learnt before training (crosslingual.py, saved as crosslingual.pt):
    # none | unsupervised (monolingual text only) | cedict (weak supervision: a CC-CEDICT seed dictionary)
    crosslingual: str = "none"
    xl_init_embeddings: bool = True      # with crosslingual: the generator's token embeddings start from them
    bt_wordbyword_steps: int = 0         # with crosslingual and lambda_adv 0: the first N back-translation
                                         # steps translate word by word instead of greedily (Lample et al. 2018)
    # A shared latent space (models/latent.py): a critic guesses the domain from the encoder's states of real
    # sentences and the encoder learns to hide it, in every generator update (Lample et al. 2018). 0: off.
    latent_adv: float = 0.0
    latent_loss: str = "reversal"        # reversal (gradient reversal) | nonsaturating (fool C held fixed)
    latent_pool: str = "mean"            # mean (states pooled per sentence) | tokens (each position)
    # Denoising weight annealed linearly from lambda_self to lambda_self_end over the adversarial phase
    # (XLM and UnsupervisedMT anneal it towards 0: the autoencoder term is what lets a model copy). -1: constant.
    lambda_self_end: float = -1.0
    max_gen_len: int = 32
    mixed_precision: str = "auto"        # auto (bf16 on GPU, fp32 on CPU) | no | bf16 | fp16
    log_every: int = 20
    eval_every: int = 500
    ae_eval_every: int = 0               # dev evaluation period in the autoencoder phase (0: eval_every);
                                         # none while D pretrains (G does not change)
    eval_lines: int = 200                # dev lines per direction in the periodic evaluation (spread over
                                         # a paired dev set, the first ones of unpaired dev text)
    ckpt_every: int = 500
    # The run's inference files (generator/, discriminator) hold the model with the best dev score
    # sqrt(style ACC * self-BLEU) seen at a bootstrap- or adversarial-phase evaluation (tasks with dev
    # references: dev ROUGE-L or BLEU; DevEvaluation.dev_score), written to best.json (before that: the latest
    # checkpoint); state/ always holds the latest step for --resume.
    # False: the inference files follow the latest checkpoint.
    keep_best: bool = True
    # Whose style ACC the dev score uses. style: the reward's style classifier (a Transformer over pieces,
    # rewards.StyleClassifier; trained for style_steps if nothing else needs it), which the evaluator
    # never uses. judge: the run's n-gram judge, the same model as the evaluator's ACC judge (same class,
    # text, seed and epochs), so test ACC of a run selected by it is optimistic; kept for comparison.
    select_by: str = "style"
    threads: int = 0                     # torch CPU threads; 0 = torch's default
    # Under accelerate launch: seconds a process waits at a collective (a gradient all-reduce, a barrier) for
    # the others before it stops with one line (textgan/distributed.py). A killed peer is noticed within
    # seconds anyway; this bounds the wait for one that hangs or drops off the network, and must exceed the
    # longest stretch one process works alone (the main process mining pairs, evaluating on dev).
    dist_timeout: float = 1800.0
    # Self-training rounds after training (`textgan train` then training/rounds.py's refine, in the run
    # itself): each rewrites round_lines training sentences per domain with the run's decode and trains
    # round_steps more steps on the accepted rewrites; they stop when the dev score stops rising. 0: none.
    rounds: int = 0
    round_lines: int = 1000
    round_steps: int = 120
    round_eval_every: int = 40


@dataclass
class EvalConfig:
    """The evaluator's own models (`textgan judge train`), trained apart from any GAN."""
    lm_steps: int = 800                  # fluency LM per domain: updates, batch lm_batch_size
    lm_batch_size: int = 32
    lm_d_model: int = 256
    lm_layers: int = 2
    lm_vocab_size: int = 8000
    judge_epochs: int = 3                # n-gram judge: passes over the training text
    # The second, neural style judge (a word CNN, models/judge.py NeuralJudge), reported as ACC-nn
    neural_judge_epochs: int = 1         # passes over the training text, batch 256, Adam
    neural_judge_dim: int = 128          # word embedding size
    neural_judge_filters: int = 100      # convolution filters per width (3, 4, 5)
    neural_judge_vocab: int = 20000      # most frequent words (CJK characters) kept; the rest share UNK
    rouge: bool = False                  # also score ROUGE-1/2/L against the references (summaries)
    bleu_tokenize: dict[str, str] = field(default_factory=dict)   # target domain -> sacreBLEU tokenizer
                                         # (default by data.normalize: ptb_lower none, zh zh, none 13a)


@dataclass
class DecodeConfig:
    """How a trained run writes by default (textgan transfer / convert / serve, benchmarks); flags override."""
    candidates: int = 1                  # K > 1: the greedy rewrite and K - 1 samples compete; each input keeps
                                         # the one the run's reward scores best (decoding/rerank.py: style classifier and
                                         # back-generator content, harmonic mean); 1 = greedy (or --beam)
    temperature: float = 0.8             # ... sampling temperature of those candidates
    style_weight: float = 1.0            # ... w_s, w_c of the harmonic mean
    content_weight: float = 1.0
    seed: int = 0                        # ... the samples' random seed (the same input gives the same output)
    guidance: float = 0.0                # causal generators: classifier-free guidance weight w away from the
                                         # source domain's prompt (models/causal.py `guided`; 0 = off)
    # Causal generators with guidance > 0: one more greedy candidate per weight listed here (a guidance
    # ladder); the rewrites at decode.guidance and at these weights (and the K - 1 samples, if any) compete
    # by the reranker's score: each input gets the push whose rewrite the run's reward likes best. [] = off.
    guidance_candidates: list[float] = field(default_factory=list)
    # Reranking (candidates > 1 or a ladder): + fluency_weight * log p_LM(candidate), its total log-prob
    # under a pretrained causal LM (decoding/scores.py): fluency_lm, or "" for the generator's generator.init.
    fluency_weight: float = 0.0
    fluency_lm: str = ""
    # ... only for candidates written into these domains ([] = every domain): an English LM (SmolLM2) has
    # nothing to say about Chinese, so translation asks it into English alone
    fluency_domains: list[str] = field(default_factory=list)
    # ... + semantic_weight * log cos(e(x), e(y)): the adequacy of a candidate by a pretrained multilingual
    # sentence encoder (`encoder`, e.g. e5), so x and y may be in different languages; and `retrieve` R > 0
    # adds the R training sentences of the target domain nearest to x by that encoder as candidates
    # (retrieval-augmented reranking; the pool's embeddings are cached as the mining miner caches them).
    semantic_weight: float = 0.0
    retrieve: int = 0
    encoder: str = ""
    # ... the style term asks that encoder too: r_style = min(the run's style classifier, a classifier over
    # the encoder's embeddings fitted on the training text, decoding.style.EmbeddingStyle, kept in the run)
    semantic_style: bool = False
    passes: int = 1                      # reranking: P > 1 rewrites the chosen candidate again P - 1 times, all
                                         # passes' candidates competing, scored against the original input
    # ... the content term's log-prob minus length_penalty * max(0, |y| / |x| - 1) (pieces): the back
    # generator rebuilds x as well from a candidate that adds words ("不错," before a complaint) as from one
    # that does not, so alone it never asks a rewrite to stay as short as its input. 0 = off.
    length_penalty: float = 0.0
    # ... + direct_weight * mean log p(y | x) under the generator writing y (the noisy channel's direct model,
    # beside the content term's channel model p(x | y) and the fluency LM's p(y)). 0 = off.
    direct_weight: float = 0.0
    # ... and the N hypotheses of a beam search of width N join the candidates (n-best reranking); 0 = off.
    # Encoder-decoder generators (a causal generator has no beam search).
    nbest: int = 0


@dataclass
class TeacherConfig:
    """Pairs a trained run writes (train.bootstrap=teacher; training/teacher.py): its decode rewrites `lines`
    training sentences of each domain and the pair filters (train.pairs_min_style, pairs_min_score: here the
    back generator's content probability) keep the good ones. Self-training rounds (`textgan refine`) and
    distillation into a student (`textgan distill`)."""
    run: str = ""                        # the teacher's run directory
    lines: int = 1000                    # training sentences it rewrites per domain
    offset: int = 0                      # ... from this line of each domain on (refine's round k: the k-th slice)
    candidates: int = 0                  # its decode: 0 = the teacher run's own decode section, 1 = one rewrite
    guidance: float = -1.0               # ... classifier-free guidance weight (-1: its own decode.guidance)
    engine: str = "torch"                # ... torch | ctranslate2 (int8; the fast greedy teacher of a student)
    # A pair is learnt from only if its r_content (the back generator's mean probability of the input given
    # the rewrite) is at least this (in place of train.pairs_min_score, which is for the miners' scores):
    # generic praise that drops the input's content scores 0.01-0.03, the median rewrite 0.24 (neg->pos) and
    # 0.51 (pos->neg) (results/sentiment/refine-rounds-dev/sb-r1.round1.*.tsv: the cpu preset's ladder). 0: off.
    min_content: float = 0.1
    # Which halves of the teacher's pairs are learnt from (in place of train.pairs_targets): both (x -> y~ and
    # y~ -> x) | real (y~ -> x alone). The turned-round half alone moved no style into the weights of the cpu
    # preset's run (results/sentiment/refine-cpu-long): the forward half is what carries the teacher's decode.
    pairs_targets: str = "both"
    batch_size: int = 64


@dataclass
class Config:
    task: str = "sentiment"
    preset: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    miner: MinerConfig = field(default_factory=MinerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    "data.normalize": ("none", "ptb_lower", "zh", "gigaword"),
    "tokenizer.model_type": ("unigram", "bpe"),
    "discriminator.mode": ("multiclass", "binary"),
    "train.estimator": ("soft", "gumbel", "reinforce"),
    "train.baseline": ("ema", "greedy"),
    "train.bootstrap": ("none", "template", "retrieve", "extract", "wordbyword", "mine", "teacher"),
    "teacher.engine": ("torch", "ctranslate2"),
    "teacher.pairs_targets": ("both", "real"),
    "train.reward_mix": ("sum", "harmonic"),
    "miner.fill": ("retrieved", "aligned"),
    "miner.units": ("words", "pieces"),
    "train.crosslingual": ("none", "unsupervised", "anchors", "cedict"),
    "train.latent_loss": ("reversal", "nonsaturating"),
    "train.latent_pool": ("mean", "tokens"),
    "train.feedback": ("hard", "soft"),
    "train.select_by": ("style", "judge"),
    "train.pairs_targets": ("both", "real"),
    "generator.arch": ("seq2seq", "causal"),
    "generator.finetune": ("lora", "full"),
    "train.mixed_precision": ("auto", "no", "bf16", "fp16"),
}


def _check_value(key: str, value, hint):
    """Return `value` if it fits the type `hint` (ints are accepted for floats), else raise."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {item.__name__}, got {value!r}")
        return [_check_value(key, v, item) for v in value]
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of {key_type.__name__} to {value_type.__name__}, got {value!r}")
        return {_check_value(key, k, key_type): _check_value(f"{key}.{k}", v, value_type) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{key} must be {hint.__name__}, got {value!r} ({type(value).__name__})")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}; got {value!r}")
    return value


def _unknown(key: str, valid: list[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}; valid keys here: {', '.join(valid)}")


def merge(obj, updates: dict, prefix: str = "") -> None:
    """Merge a nested dict into a config dataclass in place, checking keys and types."""
    hints = typing.get_type_hints(type(obj))
    valid = [f.name for f in dataclasses.fields(obj)]
    for name, value in updates.items():
        key = f"{prefix}{name}"
        if name not in valid:
            raise _unknown(key, valid)
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} is a section; give its keys ({key}.<name>=...), not {value!r}")
            merge(current, value, prefix=f"{key}.")
        else:
            setattr(obj, name, _check_value(key, value, hints[name]))


def parse_override(text: str) -> dict:
    """`train.lr_g=3e-4` -> {"train": {"lr_g": 3e-4}}; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string; a number typed by a person is a number
        try:
            value = float(raw)
        except ValueError:
            pass
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def task_file(task: str) -> Path:
    path = Path(task)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        return path
    path = CONFIG_DIR / f"{task}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown task '{task}'; known tasks: {', '.join(known)}")
    return path


def load_config(task: str, preset: str = "auto", overrides: typing.Sequence[str] = ()) -> Config:
    """Resolve a task's config. `preset="auto"` picks `gpu` when CUDA is available, else `cpu`."""
    raw = yaml.safe_load(task_file(task).read_text()) or {}
    presets = raw.pop("presets", {}) or {}
    if preset == "auto":
        import torch

        preset = "gpu" if torch.cuda.is_available() and "gpu" in presets else "cpu"
    cfg = Config()
    merge(cfg, raw)
    if presets:
        if preset not in presets:
            raise ConfigError(f"unknown preset '{preset}' for task {cfg.task}; presets: {', '.join(presets)}")
        merge(cfg, presets[preset])
    cfg.preset = preset
    for text in overrides:
        merge(cfg, parse_override(text))
    check(cfg)
    return cfg


def check(cfg: Config) -> None:
    """Settings that each parse but do not go together."""
    d = cfg.decode
    if d.candidates < 1 or not TEMPERATURE_RANGE[0] <= d.temperature <= TEMPERATURE_RANGE[1] \
            or d.style_weight < 0 or d.content_weight < 0 \
            or d.style_weight + d.content_weight <= 0 or d.guidance < 0 or any(w < 0 for w in d.guidance_candidates) \
            or d.fluency_weight < 0 or d.semantic_weight < 0 or d.retrieve < 0 or d.passes < 1 \
            or d.length_penalty < 0 or d.direct_weight < 0 or d.nbest < 0:
        raise ConfigError(f"decode needs candidates >= 1, temperature > 0 (0.01 to 10), guidance >= 0 and "
                          f"non-negative weights, not both 0; got candidates={d.candidates}, temperature={d.temperature}, "
                          f"guidance={d.guidance}, guidance_candidates={d.guidance_candidates}, style_weight={d.style_weight}, "
                          f"content_weight={d.content_weight}, fluency_weight={d.fluency_weight}, "
                          f"semantic_weight={d.semantic_weight}, retrieve={d.retrieve}, passes={d.passes} (>= 1), "
                          f"length_penalty={d.length_penalty}, direct_weight={d.direct_weight}, nbest={d.nbest}")
    if (d.semantic_weight or d.retrieve or d.semantic_style) and not d.encoder:
        raise ConfigError("decode.semantic_weight > 0, decode.retrieve > 0 and decode.semantic_style need a sentence "
                          "encoder: set decode.encoder (the packaged e5, a local directory or a model id)")
    if cfg.train.semantic_style and not (cfg.train.style_reward and d.encoder):
        raise ConfigError("train.semantic_style asks a second style classifier in the style reward: it needs "
                          "train.style_reward > 0 and decode.encoder (the encoder whose embeddings it reads)")
    if d.length_penalty and not d.content_weight:
        raise ConfigError(f"decode.length_penalty={d.length_penalty} charges the content term: it needs "
                          "decode.content_weight > 0")
    if d.nbest and cfg.generator.arch == "causal":
        raise ConfigError(f"decode.nbest={d.nbest} adds beam search's hypotheses, and a causal generator "
                          "(generator.arch=causal) has no beam search: set decode.nbest=0")
    if d.semantic_style and not d.style_weight:
        raise ConfigError("decode.semantic_style is a second style classifier: it needs decode.style_weight > 0")
    unknown = sorted(set(d.fluency_domains) - set(cfg.data.domains))
    if unknown:
        raise ConfigError(f"decode.fluency_domains names {', '.join(unknown)}, not a domain of this task "
                          f"({', '.join(cfg.data.domains)})")
    if d.fluency_weight and not (d.fluency_lm or (cfg.generator.arch == "causal" and cfg.generator.init)):
        raise ConfigError("decode.fluency_weight > 0 needs a pretrained LM to score fluency: set decode.fluency_lm "
                          "(a packaged model such as smollm2, a local directory or a model id), or generator.init "
                          "of a causal generator")
    m = cfg.miner
    if m.rescore_lm and (m.rescore_top < 1 or m.rescore_weight < 0):
        raise ConfigError(f"miner.rescore_lm needs rescore_top >= 1 and rescore_weight >= 0; got rescore_top="
                          f"{m.rescore_top}, rescore_weight={m.rescore_weight}")
    t = cfg.train                        # train.bootstrap (the miner) and what needs its pairs (textgan/mining/)
    for key in ("pairs_min_style", "pairs_min_style_real"):
        if not 0 <= getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be in [0, 1), got {getattr(t, key)}")
    if t.bootstrap == "none":
        for key in ("pairs_min_style", "pairs_min_style_real", "pairs_min_score"):
            if getattr(t, key):
                raise ConfigError(f"train.{key} filters mined pairs: set train.bootstrap")
        if t.bootstrap_steps or t.lambda_pairs:
            raise ConfigError("train.bootstrap_steps / train.lambda_pairs need mined pairs: set train.bootstrap")
    if t.bootstrap == "teacher" and not cfg.teacher.run:
        raise ConfigError("train.bootstrap=teacher learns from a trained run's rewrites: set teacher.run (its directory)")
    if t.rounds < 0 or min(t.round_lines, t.round_steps, t.round_eval_every) < 1:
        raise ConfigError(f"train.rounds must be at least 0 and round_lines, round_steps, round_eval_every positive; "
                          f"got {t.rounds}, {t.round_lines}, {t.round_steps}, {t.round_eval_every}")
    if not 0 <= cfg.teacher.min_content < 1:
        raise ConfigError(f"teacher.min_content must be in [0, 1), got {cfg.teacher.min_content}")
    if cfg.teacher.lines < 1 or cfg.teacher.offset < 0:
        raise ConfigError(f"teacher.lines must be positive and teacher.offset at least 0; got {cfg.teacher.lines}, "
                          f"{cfg.teacher.offset}")
    if t.bootstrap == "wordbyword" and t.crosslingual == "none":
        raise ConfigError("train.bootstrap=wordbyword translates through cross-lingual embeddings: set train.crosslingual")
    g = cfg.generator
    if g.max_run < 0:
        raise ConfigError(f"generator.max_run must be 0 (off) or the longest run of one piece a decode may write; "
                          f"got {g.max_run}")
    if g.init and g.init_from:
        raise ConfigError("generator.init (a pretrained start) and generator.init_from (a pretrained encoder-decoder "
                          "directory) exclude each other: set one")
    if g.arch == "causal":
        if not g.init:
            raise ConfigError("generator.arch=causal needs generator.init: a packaged model (smollm2), a local "
                              "directory or a model id")
        unsupported = [name for name, on in (("generator.words_left", g.words_left),
                                             ("generator.extract_to", bool(g.extract_to)),
                                             ("generator.max_run", g.max_run > 0),
                                             ("train.latent_adv", cfg.train.latent_adv > 0)) if on]
        if unsupported:
            raise ConfigError(f"generator.arch=causal does not support {', '.join(unsupported)}")


def config_from_dict(raw: dict) -> Config:
    """Rebuild a resolved config (e.g. a run's config.yaml)."""
    cfg = Config()
    merge(cfg, raw)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

