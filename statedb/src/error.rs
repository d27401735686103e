//! The one error type the slot StateDB reports, whatever database sits under the block.

use std::fmt;

/// A failure of the database under the block, carried as text so that results stay one
/// concrete type across the engine (the underlying error type is generic and not `Clone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

impl revm::database_interface::DBErrorMarker for DbError {}

impl DbError {
    /// Wraps any displayable database error.
    pub fn from_display(err: impl fmt::Display) -> Self {
        Self(err.to_string())
    }
}
