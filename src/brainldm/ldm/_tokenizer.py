"""The real CLIP tokenizer (SD v1.x, OpenAI CLIP ViT-L/14), built offline.

OpenAI's byte-pair vocabulary ships inside the ``open-clip-torch`` package as
``bpe_simple_vocab_16e6.txt.gz``. From it we write the ``vocab.json`` and
``merges.txt`` that ``transformers.CLIPTokenizer`` reads: 256 byte symbols,
the same with ``</w>``, the first 48,894 merges, and the two special tokens:
49,408 ids in all, as in CLIP.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path

#: Merges used by CLIP: 49408 - 256 - 256 - 2.
N_MERGES = 48894
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


def find_clip_bpe_file() -> Path:
    """Path of CLIP's BPE file inside the installed ``open_clip`` package (not imported).

    Raises
    ------
    FileNotFoundError
        If ``open-clip-torch`` is not installed.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"CLIP's vocabulary {BPE_FILE} was not found: install it with "
            "`pip install --no-deps open-clip-torch` (only its vocabulary file is used), "
            "or pass a tokenizer folder (a diffusers model's tokenizer/)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the open-clip-torch installation.")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def clip_vocabulary(bpe_file: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary (token -> id, 49,408 entries) and its merges ("a b" strings)."""
    bpe_file = find_clip_bpe_file() if bpe_file is None else Path(bpe_file)
    with gzip.open(bpe_file, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [line for line in lines[1 : N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_clip_tokenizer_files(folder: str | os.PathLike, bpe_file: Path | None = None) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of CLIP's tokenizer into ``folder``."""
    from brainldm._utils import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocabulary(bpe_file)
    with atomic_path(folder / "vocab.json") as tmp:
        tmp.write_text(json.dumps(vocab))
    with atomic_path(folder / "merges.txt") as tmp:
        tmp.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def load_clip_tokenizer(folder: str | os.PathLike | None = None):
    """CLIP's tokenizer: from a local tokenizer folder, else built from open-clip's BPE file.

    Parameters
    ----------
    folder : path-like, optional
        A diffusers model's ``tokenizer/`` folder (``vocab.json`` + ``merges.txt``).
        If None, the vocabulary comes from the BPE file that ``open-clip-torch``
        ships. Nothing is downloaded.

    Returns
    -------
    tokenizer : transformers.CLIPTokenizer
        ``model_max_length`` 77, padding with ``<|endoftext|>`` (id 49407), as SD v1.x.
    """
    import inspect

    from transformers import CLIPTokenizer

    if folder is not None:
        folder = Path(folder)
        for name in ("vocab.json", "merges.txt"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"tokenizer file {str(folder / name)!r} not found.")
    specials = dict(
        model_max_length=MAX_LENGTH,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        unk_token=END_TOKEN,
        pad_token=END_TOKEN,
    )
    if "vocab" in inspect.signature(CLIPTokenizer.__init__).parameters:  # transformers >= 5
        if folder is None:
            vocab, merges = clip_vocabulary()
        else:
            vocab = json.loads((folder / "vocab.json").read_text())
            lines = (folder / "merges.txt").read_text().split("\n")
            merges = [m for m in lines if m and not m.startswith("#version")]
        pairs = [tuple(m.split()) for m in merges]
        return CLIPTokenizer(vocab=vocab, merges=pairs, **specials)
    if folder is None:  # transformers 4 reads files at construction
        with tempfile.TemporaryDirectory() as tmp:
            write_clip_tokenizer_files(tmp)
            return CLIPTokenizer(
                vocab_file=f"{tmp}/vocab.json", merges_file=f"{tmp}/merges.txt", **specials
            )
    return CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), **specials
    )
