//! One module per subcommand.

pub mod dupes;
pub mod embed;
pub mod import;
pub mod index;
pub mod query;
pub mod status;
pub mod tag;
pub mod texts;
