//! Sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) with its tokenizer.
