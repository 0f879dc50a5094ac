//! CLIP (ResNet image tower, transformer text tower), its tokenizer and its preprocessing.
