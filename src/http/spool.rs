//! Uploads too large for memory, written to a temporary file as they arrive (with a size
//! limit), then read from there; the file is removed when dropped.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// A received upload on disk.
#[derive(Debug)]
pub(crate) struct Spooled {
    path: PathBuf,
    /// Bytes received.
    pub(crate) size: u64,
}

impl Spooled {
    /// Where the bytes are.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `stream` to a temporary file; more than `limit` bytes is a 413 (and nothing is kept).
///
/// # Errors
/// `Error::PayloadTooLarge`; `Error::BadRequest` when the client's stream breaks.
pub(crate) async fn spool<S, B, E>(mut stream: S, limit: u64) -> Result<Spooled>
where
    S: Stream<Item = std::result::Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let path = std::env::temp_dir().join(format!("formwork-upload-{}", uuid::Uuid::now_v7()));
    let mut spooled = Spooled { path, size: 0 };
    let mut file = tokio::fs::File::create(&spooled.path)
        .await
        .map_err(Error::internal)?;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| Error::BadRequest {
            detail: format!("the upload broke off: {e}"),
            errors: Vec::new(),
        })?;
        let bytes = piece.as_ref();
        spooled.size += bytes.len() as u64;
        if spooled.size > limit {
            return Err(Error::PayloadTooLarge {
                limit: limit as usize,
            });
        }
        file.write_all(bytes).await.map_err(Error::internal)?;
    }
    file.flush().await.map_err(Error::internal)?;
    Ok(spooled)
}
