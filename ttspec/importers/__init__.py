"""Models from outside: Hugging Face configs to specs (hf, with arch_writer writing the text), and a
checkpoint's config.json checked against the spec it is loaded into (checkpoint_config)."""
