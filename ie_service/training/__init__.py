"""Training the embedded model's IE adapter: training sets → examples rendered by the serving
code path (``sources``, ``examples``, ``data``), and the LoRA loop (``fit``)."""
