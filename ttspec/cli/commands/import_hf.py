"""`ttspec import-hf`: write a spec from a Hugging Face model directory or config.json."""

from __future__ import annotations

import shlex

from ...output import write_output
from ..options import OUTPUT_PATH
from ..shared import output_path


def add_parser(sub) -> None:
    ih = sub.add_parser("import-hf", help="write a spec from a Hugging Face model directory or config.json",
                        description="Write a .arch spec from a Hugging Face model directory (config.json, "
                                    "*.safetensors, tokenizer.json) or a config.json file. Supported model types: "
                                    "llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2.")
    ih.add_argument("path", metavar="PATH", help="a model directory or a config.json")
    OUTPUT_PATH.add(ih, "write the spec to this file, or to DIR/<model>.arch for a directory (an existing one, or "
                          "a path ending in `/`); default, or `-`: stdout")
    ih.add_argument("--name", help="the spec's model name (default: made from the directory's name)")
    ih.add_argument("--ignore", metavar="FIELD", action="append", default=[],
                    help="a config field ttspec does not know that you know does not change the computation "
                         "(repeatable)")


def run(args) -> int:
    from ...importers.hf import import_hf
    from ...inputs import quote

    imported = import_hf(args.path, name=args.name, ignore=tuple(args.ignore))
    if args.output in (None, "-"):
        write_output(imported.text, None)
        return 0
    output = output_path(args.output, f"{imported.name}.arch")
    write_output(imported.text, output)
    shown = quote(output, limit=4096)  # the path may hold control characters: shown, not sent to the terminal
    print(f"wrote {shown}: {imported.name}, family {imported.family} (HF {imported.hf_class})")
    print(f"next: ttspec check {quote(shlex.quote(output), limit=4096)}; ttspec params "
          f"{quote(shlex.quote(output), limit=4096)}")
    return 0
