"""Taking a model out of langshift: GGUF files for llama.cpp/Ollama, and the CLI that writes them."""
