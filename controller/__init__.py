"""modelsync's controller: the reconcile loop and its edges."""

__version__ = "0.1.0"
