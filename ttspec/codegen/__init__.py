"""Lowering the graph IR to Python programs: a torch reference and TT-NN."""
