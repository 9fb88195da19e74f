"""``moescale data``: tokenise a corpus once (``data prepare``) for many runs."""

from __future__ import annotations

import os
import sys

import click

from moescale.cli._options import FiniteFloat
from moescale.cli._output import echo_json, print_table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Corpora for `moescale train` and sweeps (needs ``moescale[train]``).

    \b
    Examples:
      moescale data prepare kjv -o corpora/kjv-bytes
      moescale data prepare shards/ --tokenizer tokenizer.json -o corpora/web --json
    """


@data.command("prepare")
@click.argument("source")
@click.option("-o", "--out", required=True, type=click.Path(),
              help="Folder to write: train.bin, val.bin, tokenizer.json, manifest.json.")
@click.option("--tokenizer", default="bytes", show_default=True,
              help="bytes, bpe (trained on SOURCE, saved in OUT), or a Hugging Face "
                   "tokenizer.json or tokenizer folder.")
@click.option("--vocab-size", type=click.IntRange(257, 1 << 20),
              help="Size of the BPE trained with --tokenizer bpe [default: 4096].")
@click.option("--text-column", help="Column holding the text of Parquet, JSON Lines, Arrow and "
                                    "dataset sources [default: text].")
@click.option("--val-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True),
              default=0.05, show_default=True,
              help="Last fraction of the tokens held out as the validation split.")
@click.option("--val-tokens", type=click.IntRange(min=1),
              help="Hold out exactly this many tokens instead of --val-fraction.")
@click.option("--threads", type=click.IntRange(1, 4096),
              help="Tokenizer threads [default: every core of this machine].")
@click.option("--force", is_flag=True, help="Replace OUT when it exists.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def prepare(source, out, tokenizer, vocab_size, text_column, val_fraction, val_tokens, threads,
            force, progress, as_json):
    """Tokenise SOURCE once into OUT, for `train --data OUT` and a sweep's `data = "OUT"`.

    SOURCE is 'kjv', a text file or folder of .txt/.md files, Parquet / JSON Lines / Arrow
    files (or a folder of them), or a folder written by datasets' save_to_disk; each row's
    --text-column is a document. Documents are joined with the tokenizer's end-of-text
    token (a blank line for tokenizers without one) and tokenised on all cores. The last
    --val-fraction of the tokens is the validation split no run trains on. manifest.json
    records the SHA-256 of the text and of the tokenizer and the token counts; runs record
    the corpus and tokenizer they used.

    \b
    Examples:
      moescale data prepare kjv -o corpora/kjv-bytes
      moescale data prepare kjv --tokenizer bpe --vocab-size 8192 -o corpora/kjv-bpe8k
      moescale data prepare hf_snapshot/data/ --tokenizer Qwen2.5-0.5B/ \\
          --text-column content -o corpora/code-qwen --json
      moescale train --preset small --tokens 2e7 --data corpora/code-qwen
    """
    from moescale.training.corpora import describe_manifest
    from moescale.training.corpora import prepare as run_prepare

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    show = sys.stderr.isatty() if progress is None else progress
    manifest = run_prepare(source, out, tokenizer=tokenizer, vocab_size=vocab_size,
                           text_column=text_column, val_fraction=val_fraction,
                           val_tokens=val_tokens, threads=threads, progress=show, force=force)
    if as_json:
        echo_json({**manifest, "out": str(out)})
    else:
        print_table(f"moescale data prepare → {out}", ["", "value"], describe_manifest(manifest))
