"""ie-service: instruction-driven information extraction served by vLLM."""

__version__ = "0.1.0"
