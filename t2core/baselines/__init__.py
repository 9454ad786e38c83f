"""Fine-tuning baselines (paper Tables 1 and 7): LoRA, IA3 and DoRA through PEFT."""
