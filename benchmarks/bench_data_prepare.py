"""`moescale data prepare` against the `tokenizers` library's own batch encoder, and the
memory of training from a token file far larger than what the run keeps resident.

1. Throughput. A corpus of ``--mb`` MB of text (KJV verses, shuffled and regrouped into
   documents of 5–400 verses with a seeded RNG, one copy per pass, so no two documents
   repeat) is written as Parquet; a byte-level BPE (``--vocab`` tokens) is trained on a
   sample. Measured in the same process: ``tokenizers``' ``Tokenizer.encode_batch`` and
   ``encode_batch_fast`` on the same documents, in the same pieces and batches ``prepare``
   uses, with the text already in memory and only token counts kept (``len(encoding)``); then
   ``prepare`` end to end (read the Parquet file lazily, hash the text, encode, convert ids,
   write ``train.bin``/``val.bin`` and the manifest). Reported: tokens/s of each, the ratios,
   and the CPU time (user + system, every thread) each took. On a shared machine one pass
   of each is noisy, so ``--repeat-mb`` MB are then encoded three more times by each,
   alternating, and the best times compared.
2. Memory. A random ``uint16`` token file of ``--token-mb`` MB, and the tiny preset trained a
   few steps from it (``--data FILE --vocab-size 256``) in a child process, against the same
   run on a 4 MB token file: the child's peak RSS (``ru_maxrss``), next to the file size.

    python benchmarks/bench_data_prepare.py [--mb 100] [--threads 2] [--token-mb 800]
        [--repeat-mb 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_documents(target_bytes: int, seed: int = 0) -> list[str]:
    from moescale.training.data import kjv_text

    verses = [v for v in kjv_text().splitlines() if v.strip()]
    rng = np.random.default_rng(seed)
    docs, size = [], 0
    while size < target_bytes:
        order = rng.permutation(len(verses))
        i = 0
        while i < len(order) and size < target_bytes:
            n = int(rng.integers(5, 400))
            doc = "\n".join(verses[j] for j in order[i:i + n])
            docs.append(doc)
            size += len(doc.encode()) + 1
            i += n
    return docs


def train_tokenizer(docs: list[str], vocab: int, path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs[:2000], trainer=trainer)
    tok.save(str(path))


def library_baseline(docs: list[str], tok_path: Path, method: str) -> tuple[int, float]:
    """Tokens and seconds of the library's batch encoder on the same pieces and batches."""
    from tokenizers import Tokenizer

    from moescale.training.corpora import BATCH_CHARS, SEPARATOR, split_pieces

    tok = Tokenizer.from_file(str(tok_path))
    encode = getattr(tok, method)
    has_eos = tok.token_to_id("<|endoftext|>") is not None
    batches, batch, chars = [], [], 0
    for i, doc in enumerate(docs):
        text = doc if has_eos or i == 0 else SEPARATOR + doc
        for piece in split_pieces(text):
            batch.append(piece)
            chars += len(piece)
            if chars >= BATCH_CHARS:
                batches.append(batch)
                batch, chars = [], 0
    batches.append(batch)
    t0 = time.perf_counter()
    n = 0
    for b in batches:
        n += sum(len(e) for e in encode(b, add_special_tokens=False))
    return n + (len(docs) - 1 if has_eos else 0), time.perf_counter() - t0


CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from moescale.training.config import TrainConfig
from moescale.accounting.presets import get_preset
from moescale.training.trainer import train
r = train(get_preset("tiny"), TrainConfig(tokens=20 * 1024, batch_tokens=1024, seq_len=128,
          data=sys.argv[1], vocab_size=256, cache_dir=sys.argv[2], eval_tokens=8192, threads=1))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
# RssAnon is the process's own memory; RssFile the token file's pages mapped from the page
# cache (clean, dropped by the kernel under memory pressure).
status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status")
          if l.startswith(("VmHWM:", "RssAnon:", "RssFile:"))}
print(json.dumps({"maxrss_kb": status["VmHWM"], "anon_kb": status["RssAnon"],
                  "file_kb": status["RssFile"], "steps": r.steps,
                  "corpus_tokens": r.corpus_tokens}))
"""


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_rss(path: Path, cache: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(cache)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_tokens(path: Path, n_bytes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        left = n_bytes // 2
        while left:
            n = min(left, 1 << 24)
            rng.integers(0, 256, n, dtype=np.uint16).tofile(f)
            left -= n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="MB of text (default 100)")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--token-mb", type=float, default=800.0)
    parser.add_argument("--repeat-mb", type=float, default=10.0)
    parser.add_argument("--only-memory", action="store_true", help="skip the throughput part")
    args = parser.parse_args()
    from moescale.training.corpora import set_threads

    set_threads(args.threads)  # before the tokenizers library starts its thread pool
    import pyarrow as pa
    import pyarrow.parquet as pq

    from moescale.training.corpora import prepare

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tmp = Path(tmp)
        if not args.only_memory:
            throughput(args, tmp, prepare, pa, pq)
        memory(args, tmp)


def throughput(args, tmp: Path, prepare, pa, pq) -> None:
    if True:
        t0 = time.perf_counter()
        docs = make_documents(int(args.mb * 1e6))
        text_bytes = sum(len(d.encode()) for d in docs)
        pq.write_table(pa.table({"text": docs}), tmp / "corpus.parquet", row_group_size=2000)
        train_tokenizer(docs, args.vocab, tmp / "tokenizer.json")
        print(f"corpus: {len(docs):,} documents, {text_bytes / 1e6:.1f} MB of text, Parquet "
              f"{(tmp / 'corpus.parquet').stat().st_size / 1e6:.1f} MB; BPE {args.vocab}; "
              f"setup {time.perf_counter() - t0:.1f} s; {args.threads} threads")
        rows = {}
        for method in ("encode_batch_fast", "prepare", "encode_batch"):
            c0 = cpu_seconds()
            if method == "prepare":
                t0 = time.perf_counter()
                manifest = prepare(tmp / "corpus.parquet", tmp / "prepared",
                                   tokenizer=str(tmp / "tokenizer.json"), threads=args.threads)
                n, s = manifest["tokens"]["total"], time.perf_counter() - t0
            else:
                n, s = library_baseline(docs, tmp / "tokenizer.json", method)
            rows[method] = (n, s, cpu_seconds() - c0)
            print(f"{method:<18} {n:>12,} tokens {s:7.1f} s (CPU {rows[method][2]:6.1f} s) "
                  f"{n / s:>10,.0f} tokens/s", flush=True)
        n, s, c = rows["prepare"]
        assert n == rows["encode_batch"][0] == rows["encode_batch_fast"][0]
        for method in ("encode_batch", "encode_batch_fast"):
            nb, sb, cb = rows[method]
            print(f"  prepare / {method}: {(n / s) / (nb / sb):.3f} in tokens/s, "
                  f"{cb / c:.3f} in tokens per CPU second")
        few = make_documents(int(args.repeat_mb * 1e6), seed=1)
        pq.write_table(pa.table({"text": few}), tmp / "few.parquet", row_group_size=2000)
        best = {"encode_batch_fast": [], "prepare": []}
        for i in range(3):
            t0 = time.perf_counter()
            library_baseline(few, tmp / "tokenizer.json", "encode_batch_fast")
            best["encode_batch_fast"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            prepare(tmp / "few.parquet", tmp / f"few{i}", tokenizer=str(tmp / "tokenizer.json"),
                    threads=args.threads)
            best["prepare"].append(time.perf_counter() - t0)
        print(f"{args.repeat_mb:.0f} MB, 3 alternating passes each: encode_batch_fast "
              f"{', '.join(f'{x:.1f}' for x in best['encode_batch_fast'])} s; prepare "
              f"{', '.join(f'{x:.1f}' for x in best['prepare'])} s; best-time ratio "
              f"prepare / encode_batch_fast {min(best['encode_batch_fast']) / min(best['prepare']):.3f}")
        del docs, few
        print(f"peak RSS of this process so far: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def memory(args, tmp: Path) -> None:
    if True:
        big, small = tmp / "big.bin", tmp / "small.bin"
        write_tokens(big, int(args.token_mb * 1e6))
        write_tokens(small, 4_000_000, seed=1)
        for name, path in (("4 MB token file", small), (f"{args.token_mb:.0f} MB token file", big)):
            t0 = time.perf_counter()
            r = train_rss(path, tmp / "cache")
            print(f"train tiny {r['steps']} steps on {name} ({r['corpus_tokens']:,} training "
                  f"tokens): peak RSS {r['maxrss_kb'] / 1024:,.0f} MB; at the end "
                  f"anonymous {r['anon_kb'] / 1024:,.0f} MB + file pages "
                  f"{r['file_kb'] / 1024:,.0f} MB; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
