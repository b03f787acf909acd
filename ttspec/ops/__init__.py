"""The op registry: everything ttspec knows about each primitive op."""
