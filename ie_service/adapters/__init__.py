"""LoRA adapters shipped with the package (merged into the embedded model at first use)."""
