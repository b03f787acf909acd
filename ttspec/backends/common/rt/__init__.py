"""The runtime every generated program carries, shared by the backends: generation (host-side
sampling) and the parameter tables (ttspec names, HF names).

These modules are never imported by the compiler: backends/common/inline.py inlines the definitions
a program uses after its model classes, as the runtime index states them (after editing a file here,
run `python -m ttspec.backends.common.make_index`). Each `header.py`
declares what a generated program's header states instead (the template writes it with the
program's values); its defaults only let the runtime import and be tested on its own.
"""

# the order their definitions take in a program
MODULES = ("generate", "parameters", "rope")
