pub mod preview;

fn main() {}
