//! Loader errors: every one names the file and the field that was wrong.

use std::path::PathBuf;

/// Malformed or missing input data.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid JSON (or not of the expected shape).
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A field has a bad value.
    #[error("{}: field `{field}`: {message}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// Which field (a JSON path).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl LoadError {
    /// A bad field.
    pub fn field(path: impl Into<PathBuf>, field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Field { path: path.into(), field: field.into(), message: message.to_string() }
    }
}

/// Reads a file to a string.
pub fn read(path: &std::path::Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })
}

/// Reads and parses a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, LoadError> {
    serde_json::from_str(&read(path)?).map_err(|source| LoadError::Json { path: path.to_owned(), source })
}
