//! The image store's domain error and its one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::HostError;
use imagebus_schema::Holder;
use imagebus_sys::state::StateError;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image by that name or digest (or the source does not exist).
    #[error("{0} not found")]
    NotFound(String),
    /// The name belongs to another image.
    #[error("image name {name:?} already names {digest}")]
    NameTaken {
        /// The name.
        name: String,
        /// The image it names.
        digest: String,
    },
    /// A digest prefix matches several images.
    #[error("{0:?} matches more than one image; give more digits")]
    Ambiguous(String),
    /// Mounts still use the image.
    #[error("image {digest} is in use by {holders:?}")]
    InUse {
        /// The image.
        digest: String,
        /// Its holders.
        holders: Vec<Holder>,
    },
    /// Bad input (source syntax, name, not an image, a layer escaping the root); nothing
    /// was changed.
    #[error("{0}")]
    Invalid(String),
    /// The tools failed to pack the image.
    #[error("building the image: {0}")]
    Build(String),
    /// The import ran past its deadline (nothing was kept), or the caller's deadline
    /// passed while it waited for its turn.
    #[error("{0}")]
    Timeout(String),
    /// The records file could not be read or written.
    #[error("image state")]
    State(#[from] StateError),
    /// The actor is not running.
    #[error("the image actor is not running")]
    Stopped,
    /// The actor failed while serving this request and is restarting.
    #[error("{0}")]
    Crashed(String),
    /// A bug or an I/O failure of our own files.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<HostError> for ImageError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Stopped(_) => ImageError::Stopped,
            HostError::Timeout { .. } => ImageError::Timeout(err.to_string()),
            HostError::Panicked(_) => ImageError::Crashed(err.to_string()),
        }
    }
}

impl ImageError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        let code = match self {
            ImageError::NotFound(_) => ErrorCode::NotFound,
            ImageError::NameTaken { .. } | ImageError::InUse { .. } => ErrorCode::Conflict,
            ImageError::Invalid(_) | ImageError::Ambiguous(_) => ErrorCode::InvalidArgument,
            ImageError::Timeout(_) => ErrorCode::Timeout,
            ImageError::Stopped | ImageError::Crashed(_) => ErrorCode::Unavailable,
            ImageError::Build(_) | ImageError::State(_) | ImageError::Internal(_) => {
                ErrorCode::Internal
            }
        };
        // A full file system (the state directory, say) is a resource that may come back,
        // and the command changed nothing: not a bug.
        if code == ErrorCode::Internal && imagebus_sys::is_out_of_space(self) {
            ErrorCode::Unavailable
        } else {
            code
        }
    }
}

impl From<ImageError> for RemoteError {
    fn from(err: ImageError) -> Self {
        RemoteError::with_chain(err.code(), &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let r: RemoteError = ImageError::InUse {
            digest: "sha256:00".into(),
            holders: vec![Holder::Mount(1)],
        }
        .into();
        assert_eq!(r.code, ErrorCode::Conflict);
        assert_eq!(ImageError::NotFound("x".into()).code(), ErrorCode::NotFound);
        assert_eq!(
            ImageError::Invalid("x".into()).code(),
            ErrorCode::InvalidArgument
        );
        let r = RemoteError::from(ImageError::from(HostError::Stopped("image")));
        assert_eq!(r.code, ErrorCode::Unavailable);
    }
}
