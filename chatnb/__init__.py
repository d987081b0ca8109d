"""chatnb: Azure Communication Services Chat from Jupyter notebooks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
