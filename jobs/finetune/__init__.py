"""Fine-tuning: LoRA adapters trained on a task's labels, written as versioned artifacts, and compared
with the base model on held-out labels (see run.finetune_task)."""
