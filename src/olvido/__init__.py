"""olvido: machine unlearning for regression, measured honestly."""

__version__ = "0.1.0"
