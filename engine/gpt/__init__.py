"""nanoGPT's character-level GPT on tiny Shakespeare: model, data, training, sampling, command line."""
