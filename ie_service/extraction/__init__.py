"""Extraction layer: schema → prompts → engine → parse → ground → merge."""
