//! One module per subcommand.

pub mod embed;
pub mod index;
pub mod query;
pub mod status;
pub mod tag;
pub mod texts;
