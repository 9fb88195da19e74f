"""PyTorch training of MoE language models (the optional ``moescale[train]`` extra).

Modules: :mod:`.moe` (router, grouped experts), :mod:`.model` (the decoder),
:mod:`.hf_weights` (load ``transformers`` weights), :mod:`.data` and :mod:`.tokenizers`
(corpora, byte/BPE tokenizers, memory-mapped token caches), :mod:`.schedules`,
:mod:`.checkpoint`, :mod:`.metrics`, :mod:`.trainer` and :mod:`.presets`.

Importing this package does not import torch; import the submodules you need.
"""
