"""Unpaired summarization (article -> headline): Gigaword normalization, length control, ROUGE evaluation
with the published and first-N-words baselines, CLI and convert. Uses the synthetic toy_sum corpus."""

import json

import pytest

from textgan.cli import main
from textgan.tokenizer import detokenize, normalize


@pytest.mark.parametrize("raw, normalized", [
    # already in the corpus's form: unchanged ("#" hidden digits, UNK, brackets, closing quotes)
    ("u.s. stocks rose #.# percent -lrb- ## points -rrb- , `` strongly '' UNK said .",
     "u.s. stocks rose #.# percent -lrb- ## points -rrb- , `` strongly '' UNK said ."),
    ("The Sri Lankan government (on Wednesday) closed 15 schools, \"quickly\".",
     "the sri lankan government -lrb- on wednesday -rrb- closed ## schools , `` quickly '' ."),
])
def test_gigaword_normalization(raw, normalized):
    assert normalize(raw, "gigaword") == normalized
    assert normalize(normalized, "gigaword") == normalized


def test_gigaword_detokenization_for_people():
    text = "sri lanka closes schools -lrb- ## of them -rrb- as war escalates"
    assert detokenize(text, "gigaword") == "Sri lanka closes schools (## of them) as war escalates"


@pytest.fixture(scope="module")
def sum_run(tmp_path_factory):
    """toy_summarization: autoencoder, D pretraining and a few REINFORCE steps with the cycle reward."""
    from textgan.config import load_config
    from textgan.runner import train

    cfg = load_config("toy_summarization", "cpu", [])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), name="sum", command=["pytest"])


def test_summarization_trains_with_length_tokens(sum_run):
    from textgan.transfer import StyleTransfer

    model = StyleTransfer(sum_run)
    assert len(model.tok.length_ids) == 24 and model.controls_length
    assert json.loads((sum_run / "lengths.json").read_text())["median_words"]["title"] in (2, 3, 4)
    rows = [json.loads(line) for line in (sum_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 35 and any("train/fool_title" in r for r in rows)
    assert any("dev/rougeL_article2title" in r and "dev/words_article2title" in r and "dev/cut_article2title" in r
               for r in rows)


def test_the_length_request_is_learnt_not_only_cut(tmp_path):
    """After a short autoencoder phase the model already writes longer outputs when asked for more words:
    the cap (outputs cut to the request) cannot make a 10-word request longer than a 2-word one. For
    headline lengths it has seen (2-4 words) the model mostly stops by itself: the cap cuts few outputs
    (measured 5 of 90 here; the toy is too easy to separate words_left from the encoder's <len_k> alone,
    6 of 90 without it; on Gigaword it is not: results/summarization/wordsleft-cpu)."""
    from textgan.config import load_config
    from textgan.evaluate import task_directions
    from textgan.runner import train
    from textgan.transfer import StyleTransfer

    cfg = load_config("toy_summarization", "cpu", ["train.ae_steps=150", "train.d_steps=0", "train.adv_steps=0",
                                                   "train.lr_g=2e-3"])
    model = StyleTransfer(train(cfg, runs_dir=tmp_path, name="len"))
    articles = task_directions(cfg)[0].inputs
    mean, cut = {}, {}
    for n in (2, 3, 4, 10):
        stats: dict = {}
        out = model.transfer(articles, to="title", tokenized=True, normalized=True, max_words=n, stats=stats)
        assert all(len(o.split()) <= n for o in out)
        mean[n], cut[n] = sum(len(o.split()) for o in out) / len(out), stats.get("cut", 0)
    assert cut[10] == 0                               # nothing needed cutting: the model stopped by itself
    assert cut[2] + cut[3] + cut[4] <= 0.2 * 3 * len(articles), cut
    assert mean[10] > mean[2] + 1.5, mean
    ratio = model.transfer(articles[:5], to="title", tokenized=True, normalized=True, ratio=0.2)
    assert all(len(o.split()) <= max(1, round(0.2 * len(a.split()))) for o, a in zip(ratio, articles))


def test_evaluation_with_rouge_and_baselines(sum_run, tmp_path):
    from textgan.config import load_config
    from textgan.evaluate import Evaluator, build_report, first_words, published_baselines, task_directions
    from textgan.transfer import StyleTransfer

    cfg = load_config("toy_summarization", "cpu", [])
    directions = task_directions(cfg)
    assert [d.name for d in directions] == ["article2title"]            # headlines have no article references
    d = directions[0]
    baselines = published_baselines(cfg)
    assert list(baselines) == ["lead-4 (published outputs)"]
    assert baselines["lead-4 (published outputs)"]["article2title"] == first_words(d.inputs, 4)
    model = StyleTransfer(sum_run)
    systems = {"input copy": {d.name: d.inputs}, **baselines, "first 3 words": {d.name: first_words(d.inputs, 3)},
               "model": {d.name: model.transfer(d.inputs, to="title", tokenized=True, normalized=True, max_words=4)}}
    report = build_report(Evaluator.train(cfg, tmp_path / "eval", progress=False), systems, directions)
    rows = {name: s["mean"] for name, s in report["systems"].items()}
    assert rows["first 3 words"]["words"] == 3 and rows["model"]["words"] <= 4
    assert rows["first 3 words"]["rouge1"] > 0 and rows["input copy"]["rouge1"] > 0    # toy titles reuse lead words
    assert all(0 <= rows[n]["rouge2"] <= rows[n]["rouge1"] <= 100 for n in rows)


def test_cli_transfer_and_convert_with_length_control(sum_run, tmp_path, capsys):
    article = "india 's president said on friday that the government would ban smoking amid protests , officials said ."
    assert main(["transfer", "--model", str(sum_run), "--to", "title", "--max-words", "3", article]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and len(out.split()) <= 3     # (35 toy steps may still write an empty title)
    src = tmp_path / "articles.txt"
    src.write_text(f"{article}\n\n{article.upper()}\n")
    assert main(["convert", str(src), "-o", str(tmp_path / "titles.txt"), "--model", str(sum_run), "--to", "title",
                 "--ratio", "0.25", "--quiet"]) == 0
    lines = (tmp_path / "titles.txt").read_text().splitlines()
    assert len(lines) == 3 and lines[1] == "" and all(len(x.split()) <= 5 for x in lines)
    assert main(["transfer", "--model", str(sum_run), "--max-words", "0", article]) == 1
    assert "must be positive" in capsys.readouterr().err
    # beam search with the words-left decoder (Generator.beam_search), in transfer and convert
    assert main(["convert", str(src), "-o", str(tmp_path / "beam.txt"), "--to", "title", "--model", str(sum_run),
                 "--beam", "3", "--max-words", "3", "--quiet"]) == 0
    beamed = (tmp_path / "beam.txt").read_text().splitlines()
    assert len(beamed) == 3 and beamed[1] == "" and all(len(x.split()) <= 3 for x in beamed)
    assert main(["evaluate", "--task", "toy_summarization", "--model", str(sum_run), "--max-words", "4",
                 "--evaluator", str(tmp_path / "eval"), "--out", str(tmp_path / "report")]) == 0
    table = capsys.readouterr().out
    assert "| lead-4 (published outputs) |" in table and "R-1" in table and "words" in table


def test_length_options_are_refused_by_models_without_length_control(trained_run, tmp_path, capsys):
    assert main(["transfer", "--model", str(trained_run), "--max-words", "5", "the food was bad ."]) == 1
    assert "has no length control" in capsys.readouterr().err
    src = tmp_path / "in.txt"
    src.write_text("the food was bad .\n")
    assert main(["convert", str(src), "-o", str(tmp_path / "out.txt"), "--model", str(trained_run),
                 "--ratio", "0.5", "--quiet"]) == 1
    assert "has no length control" in capsys.readouterr().err and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("overrides", [
    ["train.estimator=soft", "train.cycle_through_fake=true"],    # the back generator reads distributions:
                                                                   # the length token goes in as a one-hot
    ["train.lambda_adv=0", "train.d_steps=0"],                     # back-translation asks for lengths too
    ["data.length_mix=1.0"],                                       # every denoising input has a sentence appended
])
def test_length_control_with_other_training_paths(tmp_path, overrides):
    from textgan.config import load_config
    from textgan.runner import train

    cfg = load_config("toy_summarization", "cpu", [*overrides, "train.ae_steps=3", "train.adv_steps=3"])
    run = train(cfg, runs_dir=tmp_path, name="paths")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == cfg.train.ae_steps + cfg.train.d_steps + 3
    assert any("train/cycle_article" in r for r in rows)
