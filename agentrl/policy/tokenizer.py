"""A character-level tokenizer built offline, for tiny test models.

Vocabulary: the four specials ``<pad>=0, <s>=1, </s>=2, <unk>=3`` followed by every
character of :data:`string.printable` in order (ids 4..103). Ids are therefore the same on
every machine, and ``decode(encode(s)) == s`` for any printable string (spaces, tabs and
newlines included: the decoder concatenates characters without inserting separators).
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Build the character tokenizer (no network, no files).

    Returns:
        A ``PreTrainedTokenizerFast`` with pad/bos/eos/unk set, ``padding_side="left"``,
        no chat template, and no bos/eos added by ``encode``.
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in string.printable:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Every character is its own piece: split on the empty pattern, keep each char.
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
