"""`textgan convert`: order under length bucketing, kill -9 and resume, bad input, streaming memory."""

import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
import torch
import yaml

from conftest import ROOT
from textgan.cli import main
from textgan.convert import (
    ConvertError,
    LineCodec,
    Job,
    ModelEngine,
    Settings,
    clean_output,
    convert,
    convert_chunk,
    convert_shard,
    count_lines,
    split_words,
)

WORDS = "the food was good bad cold great and staff friendly rude slow service place pizza".split()


def toy_lines(n: int, seed: int = 0) -> list[str]:
    """Sentences of 1 to 20 words in random order, so length bucketing reorders every batch."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20))) for _ in range(n)]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_outputs_stay_in_input_order_under_length_bucketing(trained_run, tmp_path):
    """Each output line is the model's rewrite of the input line at the same position."""
    import textgan

    lines = toy_lines(150)
    src = write(tmp_path / "in.txt", lines)
    out = tmp_path / "out.txt"
    assert main(["convert", str(src), "-o", str(out), "--to", "pos", "--model", str(trained_run),
                 "--batch-size", "8", "--chunk-lines", "50", "--quiet", "--tokenized"]) == 0
    got = out.read_text().splitlines()
    model = textgan.load(trained_run)
    # one sentence at a time: no batching, no sorting
    alone = [model.transfer([line], to="pos", tokenized=True)[0] for line in lines]
    assert len(got) == len(lines)
    assert got == alone


def convert_cmd(src, out, run, *extra):
    return [sys.executable, "-m", "textgan", "convert", str(src), "-o", str(out), "--model", str(run),
            "--to", "pos", "--quiet", "--chunk-lines", "40", "--batch-size", "16", *extra]


def engine_convert_cmd(src, out, run, *extra, engine="torch"):
    return convert_cmd(src, out, run, "--engine", engine, *extra)


@pytest.mark.slow
@pytest.mark.parametrize("engine, kills", [("torch", 2), ("ctranslate2", 1)])
def test_kill_9_at_random_points_then_resume_gives_identical_bytes(trained_run, tmp_path, engine, kills):
    """kill -9 a conversion mid-file (`kills` times: a resumed run killed again, on torch; the resume code is
    the same for both engines), then finish it: the bytes equal an uninterrupted run's, and each run
    converted only what its predecessors had not. Fails if `_load_progress` ignores the progress record (a
    restart also gives identical bytes, but converts every line again)."""
    lines = 800
    src = write(tmp_path / "in.txt", toy_lines(lines, seed=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference.txt"
    convert_cmd = functools.partial(engine_convert_cmd, engine=engine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                      # as the subprocesses' OMP_NUM_THREADS=1 (ctranslate2 too)
    try:                                          # the uninterrupted run, in this process (no start-up cost)
        convert(src, reference, trained_run, Job(to="pos", chunk_lines=40, batch_size=16, engine=engine),
                show_progress=False)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "out.txt"
    part, progress = tmp_path / "out.txt.part0", tmp_path / "out.txt.progress0.json"
    rng = random.Random(7)
    done = 0                                      # lines converted by the killed runs, by their progress record
    for _ in range(kills):
        proc = subprocess.Popen(convert_cmd(src, out, trained_run), cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        # wait until this run has recorded a chunk of its own, then kill it at a random point
        while proc.poll() is None and (not progress.exists() or json.loads(progress.read_text())["counts"]["lines"] <= done):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
        assert not out.exists()                   # a killed run never leaves a (partial) OUTPUT
        record = json.loads(progress.read_text())
        assert done < record["counts"]["lines"] < lines and not record["done"]
        assert part.stat().st_size >= record["output_bytes"] > 0       # what it recorded is on disk
        done = record["counts"]["lines"]
    finished = subprocess.run(convert_cmd(src, out, trained_run), cwd=ROOT, env=env, check=True, timeout=300,
                              capture_output=True, text=True)
    assert f"{lines} lines ({lines - done} in this run" in finished.stderr   # only the remainder was converted
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt", "reference.txt"]


def test_bad_input_every_case(trained_run, tmp_path, capsys):
    long_line = " ".join(WORDS * 6)                                   # ~100 tokens > data.max_len
    raw = b"".join([
        b"the food was good\n",
        b"\n",                                                        # empty
        long_line.encode() + b"\n",                                   # too long
        b"the\tfood \x0bwas\x1c good\xe2\x80\xa8\n",                  # tab, control chars, U+2028
        b"windows line end\r\n",
        b"bad utf-8 \xff\xfe here\n",                                 # invalid UTF-8, line 6
        b"no newline at the end",
    ])
    src = tmp_path / "in.txt"
    src.write_bytes(raw)
    out = tmp_path / "out.txt"
    args = ["convert", str(src), "-o", str(out), "--model", str(trained_run), "--to", "pos", "--quiet"]

    assert main(args) == 1                                            # strict: stops, names the line
    err = capsys.readouterr().err
    assert "line 6" in err and "invalid UTF-8" in err and "--errors replace" in err
    assert not out.exists()

    assert main([*args, "--errors", "replace"]) == 0                 # resumes, repairs, goes on
    summary = capsys.readouterr().err
    assert "7 lines" in summary and "empty 1" in summary and "truncated 1" in summary and "repaired 1" in summary
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == 7                   # one output line per input line
    assert lines[1] == b""                                            # empty in, empty out
    assert all(b"\t" not in x and b"\r" not in x and b"\x0b" not in x for x in lines)

    out_split = tmp_path / "split.txt"
    assert main([*args[:3], str(out_split), *args[4:], "--errors", "replace", "--long", "split"]) == 0
    assert "split 1" in capsys.readouterr().err
    assert len(out_split.read_text().split("\n")) - 1 == 7

    assert main(args) == 1                                            # a finished output is not overwritten
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("fmt,line,expect", [
    ("tsv", "7\tthe food was good\tx", lambda out: out.split("\t")[:3] == ["7", "the food was good", "x"]
     and len(out.split("\t")) == 4),
    ("jsonl", json.dumps({"id": 7, "text": "the food\twas good"}),
     lambda out: json.loads(out)["id"] == 7 and "transfer" in json.loads(out)),
])
def test_tsv_and_jsonl_keep_their_fields(trained_run, tmp_path, fmt, line, expect):
    src = write(tmp_path / f"in.{fmt}", [line, ""])
    out = tmp_path / f"out.{fmt}"
    extra = ["--column", "2"] if fmt == "tsv" else []
    assert main(["convert", str(src), "-o", str(out), "--model", str(trained_run), "--to", "pos", "--quiet",
                 "--format", fmt, *extra]) == 0
    got = out.read_text().split("\n")
    assert len(got) == 3 and got[1] == "" and expect(got[0])


def test_malformed_jsonl_names_the_line(trained_run, tmp_path, capsys):
    src = write(tmp_path / "in.jsonl", [json.dumps({"text": "good"}), "{not json"])
    out = tmp_path / "out.jsonl"
    base = ["convert", str(src), "-o", str(out), "--model", str(trained_run), "--to", "pos", "--quiet",
            "--format", "jsonl"]
    assert main(base) == 1
    assert "line 2: invalid JSON" in capsys.readouterr().err
    assert main([*base, "--errors", "replace"]) == 0
    assert json.loads(out.read_text().splitlines()[1])["transfer"] == ""


@pytest.mark.parametrize("problem", ["missing model", "missing input", "other settings"])
def test_errors_are_one_line_and_leave_nothing_behind(trained_run, tmp_path, capsys, problem):
    src = write(tmp_path / "in.txt", ["good food"] * 5)
    out = tmp_path / "out.txt"
    args = ["convert", str(src), "-o", str(out), "--model", str(trained_run), "--to", "pos", "--quiet"]
    if problem == "missing model":
        args[args.index("--model") + 1] = str(tmp_path / "nowhere")
    elif problem == "missing input":
        args[1] = str(tmp_path / "nothing.txt")
    else:   # an unfinished conversion with other settings is not continued with these
        (tmp_path / "out.txt.progress0.json").write_text(json.dumps({"fingerprint": "0" * 16}))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("textgan convert: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_unfinished_output_is_not_finished_with_another_decoding_of_the_run(trained_run, tmp_path, capsys,
                                                                               monkeypatch):
    """Interrupted after its first chunk, a conversion is refused when the run's decode section changed in the
    meantime (two decodings in one file), and finishes once it is as it was."""
    run = shutil.copytree(trained_run, tmp_path / "run")
    src = write(tmp_path / "in.txt", toy_lines(100))
    args = ["convert", str(src), "-o", str(tmp_path / "out.txt"), "--model", str(run), "--to", "pos", "--quiet",
            "--chunk-lines", "40"]
    rewrite, calls = ModelEngine.rewrite, []

    def interrupted_at_the_second_chunk(self, texts, targets):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return rewrite(self, texts, targets)

    monkeypatch.setattr(ModelEngine, "rewrite", interrupted_at_the_second_chunk)
    assert main(args) == 130 and "run the same command again" in capsys.readouterr().err
    monkeypatch.setattr(ModelEngine, "rewrite", rewrite)
    config = run / "config.yaml"
    original = config.read_text()
    edited = yaml.safe_load(original)
    edited["decode"]["style_weight"] += 1.0
    config.write_text(yaml.safe_dump(edited))
    assert main(args) == 1
    assert "the run's decode section" in capsys.readouterr().err
    config.write_text(original)
    assert main(args) == 0
    assert "100 lines (60 in this run" in capsys.readouterr().err


def test_helpers():
    assert clean_output("a\tb\nc\r\x0bd\u2028e\x85f") == "a b c d e f"
    assert split_words(["a", "bb", "c", "dd"], [1, 2, 1, 2], 3) == ["a bb", "c dd"]
    assert split_words(["long"], [9], 3) == ["long"]
    with pytest.raises(ConvertError, match="line 3: invalid UTF-8"):
        LineCodec("txt").decode(b"\xff", "f: line 3", {"repaired": 0})


class EchoEngine:
    """A stand-in model for the streaming test: uppercases the normalized text."""

    max_len = 50

    def normalize(self, text):
        return text.strip()

    def lengths(self, texts):
        return [len(t.split()) for t in texts]

    def targets(self, texts):
        return ["pos"] * len(texts)

    def rewrite(self, texts, targets):
        return [t.upper() for t in texts]


def test_long_lines_are_split_into_pieces_the_model_takes_or_truncated():
    engine, seen = EchoEngine(), []
    engine.max_len = 4
    rewrite = engine.rewrite
    engine.rewrite = lambda texts, targets: seen.extend(texts) or rewrite(texts, targets)
    counts = dict.fromkeys(["lines", "empty", "truncated", "split", "repaired"], 0)
    line = "one two three four five six seven eight nine"
    assert convert_chunk([line, "", "short one"], engine, "split", counts) == [line.upper(), "", "SHORT ONE"]
    assert seen == ["one two three four", "five six seven eight", "nine", "short one"]
    assert counts == {"lines": 3, "empty": 1, "truncated": 0, "split": 1, "repaired": 0}
    convert_chunk([line], engine, "truncate", counts)
    assert counts["truncated"] == 1


def test_memory_stays_flat_as_the_input_grows(tmp_path):
    """Peak Python memory converting 200k lines is about that of 20k lines: the input is streamed."""
    peaks = {}
    for n in (20_000, 200_000):
        src = tmp_path / f"in{n}.txt"
        with open(src, "w") as f:
            for i in range(n):
                f.write(f"line {i} the food was good\n")
        out = tmp_path / f"out{n}.txt"
        settings = Settings(str(src), src.stat().st_size, 0, "echo", Job(to="pos", chunk_lines=1000))
        tracemalloc.start()
        convert_shard(settings, out, EchoEngine(), LineCodec("txt"))
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count_lines(tmp_path / f"out{n}.txt.part0") == n
    assert peaks[200_000] < 1.5 * peaks[20_000] + 256 * 1024, peaks


def test_convert_corpus_script_converts_each_file_of_a_split_and_skips_finished_ones(trained_run, tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "convert_corpus.py"), "--corpus", "toy", "--split", "test",
           "-o", str(tmp_path), "--model", str(trained_run), "--quiet"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.neg.pos", "test.pos.neg"]   # each into the other
    from textgan.corpora import corpus_dir, load_card

    card = load_card("toy")
    source = corpus_dir(card, ("test",)) / card.files["test"]["neg"]
    assert count_lines(tmp_path / "test.neg.pos") == count_lines(source)
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr.count("done already, skipped") == 2


@pytest.mark.parametrize("lines,chunk_lines,stop_after", [(95, 10, 3), (95, 10, 0), (30, 10, 2), (7, 10, 0), (0, 5, 0)])
def test_chunks_left_counts_what_each_rank_converts(tmp_path, lines, chunk_lines, stop_after):
    """The lockstep of several processes (distributed.Lockstep) needs each rank to announce how many chunks it
    has left: the count equals the chunks convert_shard then converts, fresh and after an interruption."""
    from textgan.convert import Progress, _load_progress, chunks_left, part_paths

    src = tmp_path / "in.txt"
    write(src, [f"line {i} the food" for i in range(lines)])
    for rank in (0, 1):
        out = tmp_path / f"out{rank}.txt"
        settings = Settings(str(src), src.stat().st_size, 0, "echo", Job(to="pos", chunk_lines=chunk_lines), processes=2)
        done = []

        def own_chunk():
            done.append(1)
            if len(done) == stop_after:
                raise KeyboardInterrupt               # a kill after this chunk's record

        assert chunks_left(settings, Progress(settings.fingerprint()), rank, lines) == len(range(rank, -(-lines // chunk_lines), 2))
        try:
            convert_shard(settings, out, EchoEngine(), LineCodec("txt"), rank, after_own_chunk=own_chunk)
        except KeyboardInterrupt:
            progress = _load_progress(part_paths(out, rank)[1], settings)
            left = chunks_left(settings, progress, rank, lines)
            done.clear()
            convert_shard(settings, out, EchoEngine(), LineCodec("txt"), rank, after_own_chunk=lambda: done.append(1))
            assert len(done) == left
        progress = _load_progress(part_paths(out, rank)[1], settings)
        assert progress.done and chunks_left(settings, progress, rank, lines) == 0
