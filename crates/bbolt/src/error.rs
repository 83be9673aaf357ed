use std::io;

/// Everything that can go wrong reading or writing a bbolt file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying file or writer failed.
    #[error("bbolt: i/o: {0}")]
    Io(#[from] io::Error),
    /// Neither meta page is valid: not a bbolt file, or both metas damaged.
    #[error("bbolt: no valid meta page: meta 0: {meta0}; meta 1: {meta1}")]
    InvalidMeta {
        /// Why meta page 0 was refused.
        meta0: String,
        /// Why meta page 1 was refused.
        meta1: String,
    },
    /// The file is shorter than its meta says (or than a meta page).
    #[error("bbolt: file truncated: {0}")]
    Truncated(String),
    /// A page is malformed: a bad page id, a wrong page type, an element out of the page,
    /// keys out of order, a cycle, a tree too deep.
    #[error("bbolt: corrupt page {page}: {reason}")]
    Corrupt {
        /// The page where the problem was found (0 for an inline bucket's page).
        page: u64,
        /// What is wrong.
        reason: String,
    },
    /// A writer call that breaks the writer's contract (order, sizes, nesting).
    #[error("bbolt: writer: {0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn corrupt(page: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt { page, reason: reason.into() }
    }

    pub(crate) fn usage(reason: impl Into<String>) -> Error {
        Error::Usage(reason.into())
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
