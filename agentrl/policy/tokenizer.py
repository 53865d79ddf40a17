"""Tokenizers built offline for the ``tiny`` model (``model.tokenizer=word|ruleworld|char``).

- ``word`` (the default, :func:`build_word_tokenizer`): a byte-pair (BPE) tokenizer of 414
  pieces trained on the built-in envs' text and shipped in the package;
- ``ruleworld`` (:func:`build_ruleworld_tokenizer`): the same kind of BPE, 251 pieces, trained
  on RuleWorld's text;
- ``char`` (:func:`build_char_tokenizer`): one token per character.

The ``char`` vocabulary: the four specials ``<pad>=0, <s>=1, </s>=2, <unk>=3`` followed by every
character of :data:`string.printable` in order (ids 4..103). Ids are therefore the same on
every machine, and ``decode(encode(s)) == s`` for any printable string (spaces, tabs and
newlines included: the decoder concatenates characters without inserting separators).
"""

from __future__ import annotations

import string
from pathlib import Path

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
    return _wrap(tok)


# --- the word tokenizer ---------------------------------------------------------------------

WORD_TOKENIZER_FILE = Path(__file__).parent / "assets" / "word_tokenizer.json"
WORD_VOCAB_SIZE = 512


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Newlines are always their own token (the stop string); other pieces end at a space
    # ("Is ", "it ", "an ", "animal?") so that tokenising prompt + completion jointly (as
    # TRL's SFTTrainer does) gives the same ids as tokenising them apart, because every
    # prompt ends with a space or a newline.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern="\n", behavior="isolated"),
            pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous"),
        ]
    )


def train_word_tokenizer(texts: list[str], vocab_size: int = WORD_VOCAB_SIZE) -> Tokenizer:
    """Train the BPE behind :func:`build_word_tokenizer` on ``texts`` (deterministic).

    Every printable character is in the initial alphabet, so any printable text encodes.
    """
    from tokenizers import trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(string.printable),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def builtin_corpus(episodes: int = 100, seed: int = 123) -> list[str]:
    """Prompts + actions of the built-in envs under their scripted policies."""
    from agentrl.warmstart import scripted_episodes

    texts = []
    for env_id in ("agentrl/TwentyQuestions-v0", "agentrl/GuessTheNumber-v0"):
        for kind in ("random", "good"):
            for ep in scripted_episodes(env_id, {}, kind, episodes, seed=seed):
                for turn in ep.turns:
                    texts.append(turn.observation + "\nAction: " + turn.action + "\n")
    return texts


def ruleworld_corpus(episodes: int = 200, seed: int = 123) -> list[str]:
    """Prompts + actions of RuleWorld (depths 1-4) under its scripted players."""
    from agentrl.warmstart import scripted_episodes

    texts = []
    for kind in ("random", "good"):
        for ep in scripted_episodes(
            "agentrl/RuleWorld-v0", {"depth": [1, 2, 3, 4]}, kind, episodes, seed=seed
        ):
            for turn in ep.turns:
                texts.append(turn.observation + "\nAction: " + turn.action + "\n")
    return texts


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_word_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped BPE tokenizer of the ``tiny`` model (``model.tokenizer=word``).

    A BPE (trained with a budget of 512 pieces; 414 came out) trained on the built-in envs' text (``python -m
    agentrl.policy.tokenizer`` rebuilds the shipped file): whole words of those envs are
    single tokens, any other printable text falls back to characters, and
    ``decode(encode(s)) == s``.
    """
    return _wrap(Tokenizer.from_file(str(WORD_TOKENIZER_FILE)))


RULEWORLD_TOKENIZER_FILE = Path(__file__).parent / "assets" / "ruleworld_tokenizer.json"


def build_ruleworld_tokenizer() -> PreTrainedTokenizerFast:
    """The ``tiny`` model's tokenizer for RuleWorld (``model.tokenizer=ruleworld``).

    The same kind of BPE as :func:`build_word_tokenizer` (251 pieces: RuleWorld's words run
    out before 512), trained on RuleWorld's text (:func:`ruleworld_corpus`;
    ``python -m agentrl.policy.tokenizer ruleworld`` rebuilds the shipped file): every word
    of RuleWorld (``red ``, ``ball``, ``touching ``) is one token, so an action ``touch red ball with blue key`` is 7 tokens (24 with the
    word tokenizer, whose pieces split RuleWorld's names into fragments) and a prompt ~4x
    shorter; other printable text falls back to characters, ``decode(encode(s)) == s``.
    """
    return _wrap(Tokenizer.from_file(str(RULEWORLD_TOKENIZER_FILE)))


TOKENIZERS = {
    "word": build_word_tokenizer,
    "char": build_char_tokenizer,
    "ruleworld": build_ruleworld_tokenizer,
}
"""The ``tiny`` model's tokenizers by name (``model.tokenizer``)."""


if __name__ == "__main__":  # rebuild a shipped tokenizer file (default: word)
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "word"
    path, corpus = {
        "word": (WORD_TOKENIZER_FILE, builtin_corpus),
        "ruleworld": (RULEWORLD_TOKENIZER_FILE, ruleworld_corpus),
    }[which]
    path.parent.mkdir(parents=True, exist_ok=True)
    train_word_tokenizer(corpus()).save(str(path))
    print(f"wrote {path}")
