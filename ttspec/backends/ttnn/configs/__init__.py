"""The TT-NN backend's typed configuration layer, the typed counterpart of tt_transformers'
`model_config.py`: memory, program and compute-kernel configurations as frozen values that render
as the code constructing their ttnn objects (values.py), and the rules that choose them from shapes,
the target and the weight format (rules.py: fidelity, presets, core counts; decode.py; prefill.py).

Pure and compile-time only: imports neither ttnn nor torch."""
