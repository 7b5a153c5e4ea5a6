import pytest

pytest.importorskip("transformers")

from brainldm.ldm import clip_vocabulary, load_clip_tokenizer, write_clip_tokenizer_files  # noqa: E402


def test_known_ids():
    tok = load_clip_tokenizer()
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408
    padded = tok("a cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407 and padded[:2] == [49406, 320]


def test_vocabulary_layout():
    vocab, merges = clip_vocabulary()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # 256 byte symbols, then with </w>
    assert vocab[merges[0].replace(" ", "")] == 512


def test_folder_roundtrip(tmp_path):
    write_clip_tokenizer_files(tmp_path)
    tok = load_clip_tokenizer(tmp_path)
    assert tok("an orange triangle on the grass").input_ids == load_clip_tokenizer()(
        "an orange triangle on the grass"
    ).input_ids


def test_missing_folder_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer file .*vocab.json' not found"):
        load_clip_tokenizer(tmp_path)
