"""Weight tooling: recover from a diff, apply a delta, merge a LoRA, MD5 manifests.
The only package importing peft (in ``lora``)."""
