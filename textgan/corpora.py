"""Corpus cards, the data root, and loading corpora through `datasets`.

A corpus card (`corpora/<name>.yaml`) names a corpus's files per split and domain, its human references,
its licence and the public URL of each file. The files themselves live under a data root, searched in
this order (DESIGN.md, "Data root"):

    --data-dir  ->  $TEXTGAN_DATA  ->  <project>/../shared/corpora  ->  ~/.cache/textgan/corpora
    ->  <project>/corpora (small corpora shipped with the project, e.g. `toy`)
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CARD_DIR = PROJECT_ROOT / "corpora"


class CorpusError(RuntimeError):
    """A corpus that cannot be found or read; the message says where we looked and what to do."""


@dataclass
class CorpusCard:
    name: str
    description: str = ""
    license: str = ""
    domains: list[str] = field(default_factory=list)
    files: dict[str, dict[str, str]] = field(default_factory=dict)        # split -> domain -> rel path
    references: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # split -> source domain -> files
    # split -> source domain -> TSV "source<TAB>ref1[<TAB>ref2 ...]": distinct sources with all their references
    multiref: dict[str, dict[str, str]] = field(default_factory=dict)
    # name -> source domain -> {"source": file, "references": [files]}: further test sets (e.g. WMT news)
    test_sets: dict[str, dict[str, dict]] = field(default_factory=dict)
    # split -> source domain -> name -> file: published baseline outputs aligned with the split's sources
    baselines: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)                    # rel path -> URL
    normalized: str = "none"          # the normalization scheme the files are already in (skip re-normalizing)


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("TEXTGAN_CACHE", Path.home() / ".cache" / "textgan"))
    return root.joinpath(*parts)


def load_card(name: str) -> CorpusCard:
    path = CARD_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CARD_DIR.glob("*.yaml"))
        raise CorpusError(f"no corpus card '{name}'; known corpora: {', '.join(known)}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - set(CorpusCard.__dataclass_fields__))
    if unknown:
        raise CorpusError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(CorpusCard.__dataclass_fields__)}")
    return CorpusCard(**raw)


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    roots = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("TEXTGAN_DATA"):
        roots.append(Path(os.environ["TEXTGAN_DATA"]))
    roots += [PROJECT_ROOT.parent / "shared" / "corpora", cache_dir("corpora"), CARD_DIR]
    return roots


def corpus_dir(card: CorpusCard, splits: tuple[str, ...] = ("train",), data_dir=None, files=()) -> Path:
    """The first `<root>/<card.name>` holding every file of `splits` (and `files`), or a CorpusError saying
    where we looked."""
    needed = [rel for split in splits for rel in card.files.get(split, {}).values()] + list(files)
    missing_splits = [s for s in splits if s not in card.files]
    if missing_splits:
        raise CorpusError(f"corpus '{card.name}' has no split(s) {', '.join(missing_splits)}; "
                          f"it has: {', '.join(card.files)}")
    looked = []
    for root in data_roots(data_dir):
        candidate = root / card.name
        looked.append(str(candidate))
        if all((candidate / rel).is_file() for rel in needed):
            return candidate
    hint = (f"run `textgan data download {card.name}` on a machine with internet access"
            if card.urls else "this corpus has no download URLs; copy its files there by hand")
    raise CorpusError(f"corpus '{card.name}' ({', '.join(list(splits) + list(files))}) not found; looked in: {'; '.join(looked)}. "
                      f"Put it under one of them, pass --data-dir or set $TEXTGAN_DATA, or {hint}.")


def load_split(card: CorpusCard, split: str, data_dir=None, max_lines: int = 0):
    """A `datasets.DatasetDict` {domain: Dataset(text)} of one split, cached as Arrow under ~/.cache/textgan.

    Blank lines are dropped: they carry no style and would become empty training pairs.
    """
    import datasets

    root = corpus_dir(card, (split,), data_dir)
    files = {domain: str(root / rel) for domain, rel in card.files[split].items()}
    try:
        ds = datasets.load_dataset("text", data_files=files, cache_dir=str(cache_dir("datasets")))
    except UnicodeDecodeError as err:
        raise CorpusError(f"corpus '{card.name}' split {split}: a file is not valid UTF-8 ({err})") from err
    ds = ds.filter(lambda row: bool(row["text"].strip()))
    if max_lines:
        ds = datasets.DatasetDict({d: part.select(range(min(max_lines, len(part)))) for d, part in ds.items()})
    return ds


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file, without their line ends; invalid UTF-8 names the line."""
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as err:
                raise CorpusError(f"{path}: line {number} is not valid UTF-8 ({err.reason})") from err
    return lines


def references(card: CorpusCard, split: str, source_domain: str, data_dir=None) -> list[list[str]]:
    """Human rewrites of `split`'s `source_domain` sentences: one list per reference set."""
    rels = card.references.get(split, {}).get(source_domain, [])
    if not rels:
        return []
    root = corpus_dir(card, (split,), data_dir)
    return [read_lines(root / rel) for rel in rels]


def download(card: CorpusCard, dest_root: Path | None = None, progress=print) -> Path:
    """Fetch every URL of a card into `<dest_root>/<name>/` (default ~/.cache/textgan/corpora)."""
    if not card.urls:
        raise CorpusError(f"corpus '{card.name}' has no download URLs in its card")
    dest = Path(dest_root or cache_dir("corpora")) / card.name
    for rel, url in card.urls.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        progress(f"{url} -> {target}")
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                out.write(response.read())
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise CorpusError(f"could not download {url}: {err}") from err
        tmp.replace(target)
    return dest
