"""quantlib: the quant research platform's library."""
__version__ = "0.1.0"
