"""Text for the GPT: the character tokenizer, checks on a person's text, the 90/10 split, batches."""


import pytest
import torch

from engine.core.errors import DataError, LabError
from engine.gpt.data import (
    CharTokenizer,
    decode_text,
    get_batch,
    load_shakespeare,
    prepare_text,
    read_text_file,
)
from tests.texts import rhymes


def test_tokenizer_is_the_sorted_characters_and_round_trips():
    tokenizer = CharTokenizer.from_text("hello world")
    assert tokenizer.chars == " dehlorw"
    ids = tokenizer.encode("hello")
    assert ids == [3, 2, 4, 4, 5]
    assert tokenizer.decode(ids) == "hello"
    assert CharTokenizer.from_dict(tokenizer.to_dict()) == tokenizer


def test_characters_outside_the_vocabulary_are_named():
    tokenizer = CharTokenizer.from_text("abc ")
    with pytest.raises(DataError, match=r"The prompt has 2 character\(s\) outside the model's vocabulary: 'x', 'é'"):
        tokenizer.encode("abé x", what="The prompt")


def test_a_tokenizer_card_without_distinct_characters_is_refused():
    with pytest.raises(DataError):
        CharTokenizer.from_dict({"chars": "aab"})
    with pytest.raises(DataError):
        CharTokenizer.from_dict({})


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "is empty"),
        (b"caf\xe9 au lait", r"not UTF-8 text: byte 3 \(0xe9\)"),
        (b" \n\t  ", "only whitespace"),
        (b"aaaaaaa", "single character"),
    ],
)
def test_unusable_text_is_a_data_error_saying_why(data, words):
    with pytest.raises(DataError, match=words):
        decode_text(data, "notes.txt")


def test_a_byte_order_mark_is_not_part_of_the_text():
    assert decode_text("\ufeffhello".encode("utf-8")) == "hello"


def test_too_large_a_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as file:
        file.truncate(21 * 2**20)  # sparse: 21 MB on paper, nothing on disk
    with pytest.raises(DataError, match=r"huge.txt is 21.0 MB; the limit is 20 MB"):
        read_text_file(path)
    with pytest.raises(DataError, match="limit is 20 MB"):
        decode_text(b"ab" * (10 * 2**20 + 1))


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="Cannot read"):
        read_text_file(tmp_path / "nowhere.txt")


def test_split_is_nanogpts_90_10():
    data = prepare_text(rhymes(1000))
    assert (len(data.train), len(data.val)) == (900, 100)
    assert data.tokenizer.decode(data.train[:7].tolist()) == rhymes(1000)[:7]
    assert len(data.fingerprint) == 16


def test_block_size_beyond_what_the_text_allows_names_the_largest_that_fits():
    data = prepare_text(rhymes(300), "rhymes.txt")
    assert data.largest_block_size() == 29  # the 30-character validation split holds 29 + 1
    data.require_block_size(29)
    with pytest.raises(DataError, match=r"rhymes.txt is too short for block_size 64.*block_size of at most 29"):
        data.require_block_size(64)


def test_batches_are_windows_with_targets_shifted_by_one():
    data = prepare_text(rhymes(1200))
    x, y = get_batch(data.train, 16, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    again, _ = get_batch(data.train, 16, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)  # the generator alone decides the batch
    text = data.tokenizer.decode(x[0].tolist())
    assert text in rhymes(1200)


def test_a_batch_longer_than_the_split_is_refused():
    with pytest.raises(LabError, match="block_size"):
        get_batch(torch.arange(10), 10, 2, torch.Generator())


@pytest.mark.data
def test_tiny_shakespeare_is_nanogpts():
    text = load_shakespeare()
    data = prepare_text(text, "tiny Shakespeare")
    assert len(text) == 1_115_394
    assert data.tokenizer.vocab_size == 65
    assert (len(data.train), len(data.val)) == (1_003_854, 111_540)  # as data/shakespeare_char/prepare.py prints
