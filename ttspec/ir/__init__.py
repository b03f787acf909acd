"""The graph IR: types, graph, and the elaborator that builds it from the AST."""
