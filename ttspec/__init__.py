"""ttspec: a declarative compiler from .arch specs to TT-NN programs."""

__version__ = "0.1.0"
