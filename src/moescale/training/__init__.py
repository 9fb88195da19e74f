"""PyTorch training of MoE language models (the optional ``moescale[train]`` extra).

Modules: :mod:`.model` (the decoder: attention, router, routed and shared experts),
:mod:`.fused` (its hand-written CPU kernels), :mod:`.routing` (routing rules without torch),
:mod:`.hf_weights` (load ``transformers`` weights), :mod:`.corpora`, :mod:`.data` and
:mod:`.tokenization` (sources, prepared token files, samplers, tokenizers),
:mod:`.schedules`, :mod:`.checkpoint`, :mod:`.metrics`, :mod:`.distributed`, :mod:`.config`
(the settings, their defaults and the keys a sweep's ``[train]`` takes), :mod:`.options` (the
model options of a run), :mod:`.trackers` (TensorBoard, MLflow, W&B) and :mod:`.trainer`.

Importing this package does not import torch; import the submodules you need.
"""
