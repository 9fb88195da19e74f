"""Where the flow starts: what a model is and what it costs.

:mod:`~moescale.accounting.architecture` describes any MoE transformer (the
:class:`~moescale.accounting.architecture.Architecture`); :mod:`~moescale.accounting.presets`
names published ones; :mod:`~moescale.accounting.hf` reads Hugging Face configs,
:mod:`~moescale.accounting.hf_export` writes them and :mod:`~moescale.accounting.megatron`
Megatron-LM flags; :mod:`~moescale.accounting.counting` counts parameters, FLOPs and
memory under the named conventions of :mod:`~moescale.accounting.conventions`.
"""
