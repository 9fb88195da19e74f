"""PyTorch training of MoE language models (the optional ``moescale[train]`` extra).

Modules: :mod:`.model` (the decoder: attention, router, routed and shared experts),
:mod:`.fused` (its hand-written CPU kernels), :mod:`.routing` (routing rules without torch),
:mod:`.hf_weights` (load ``transformers`` weights), :mod:`.corpora`, :mod:`.data` and
:mod:`.tokenization` (sources, prepared token files, samplers, tokenizers),
:mod:`.schedules`, :mod:`.checkpoint`, :mod:`.metrics`, :mod:`.distributed`, :mod:`.config`,
:mod:`.trainer` and :mod:`.runs` (train folders as a run table).

Importing this package does not import torch; import the submodules you need.
"""
