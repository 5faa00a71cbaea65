"""Weight tools: recover from a diff, apply a delta, merge a LoRA, MD5 manifests, dequantize,
quantize. The only package importing peft (in ``lora``)."""
