"""One module per command: each has `add_parser(sub)` (its options) and `run(args)` (exit status)."""
