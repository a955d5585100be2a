//! OpenAI-compatible chat completions (vLLM, Ollama, llama.cpp server, OpenAI).
