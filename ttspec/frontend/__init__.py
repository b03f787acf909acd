"""Front end: source text -> AST (grammar binding, parser, short form)."""
