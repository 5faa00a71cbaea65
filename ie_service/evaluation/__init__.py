"""Gold data loaders, strict P/R/F1 scoring, and the eval runner."""
