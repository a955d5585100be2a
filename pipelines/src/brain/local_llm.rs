//! The embedded local LLM (llama.cpp, GGUF).
