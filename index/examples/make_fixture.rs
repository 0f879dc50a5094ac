//! Writes the committed compatibility fixture:
//!
//!     cargo run -p xsearch-index --example make_fixture -- fixtures/index/v2
//!
//! The directory must not exist yet. `tests/compat.rs` opens the result.

#[path = "../tests/common/fixture.rs"]
mod fixture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or("usage: make_fixture <new directory>")?;
    let dir = std::path::PathBuf::from(dir);
    if dir.exists() {
        return Err(format!("{}: already exists, remove it first", dir.display()).into());
    }
    fixture::make(&dir)?;
    Ok(())
}
