"""Everything about a model folder, read or written without vllm.

``inspection`` (what a folder is, ``ie-service inspect-model``), ``prompt_formats`` (the one
owner of prompt formats: the format files and the family evidence they declare),
``tokenizer_choice`` (fast or sentencepiece), ``embedded`` (the embedded default model),
``adapters`` (run-time LoRA adapters) and ``weights/`` (the weight tools: diff, merge-lora,
md5, dequantize, quantize). ``engine/`` reads them; nothing here imports ``engine/``.
"""
