//! CLIP (ResNet image tower, transformer text tower), its tokenizer and its preprocessing.

pub mod config;
pub mod error;
pub mod hub;
pub mod preprocess;
pub mod resnet;
pub mod text;
pub mod tokenizer;
pub mod weights;
