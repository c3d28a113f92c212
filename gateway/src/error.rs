//! The gateway's errors and their HTTP status codes (ImageAPI's: 400 invalid data, 404 not
//! found, 409 busy, 501 no driver, 500 for everything else), answered as ImageAPI's
//! `{code, message}` body.

use crate::model::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use imagebus_bus::{ErrorCode, RemoteError};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such object (404).
    #[error("{0}")]
    NotFound(String),
    /// In use or busy (409).
    #[error("{0}")]
    Busy(String),
    /// A kind without a driver (501).
    #[error("{0}")]
    NotImplemented(String),
    /// The request body is over the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request did not finish within the request time limit (500).
    #[error("{0}")]
    TimedOut(String),
    /// Anything else the gateway itself failed at (500).
    #[error("{0}")]
    Internal(String),
    /// An error answered by a module.
    #[error("{}: {}", .0.code, .0.message)]
    Module(#[from] RemoteError),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TimedOut(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Module(e) => match e.code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::InvalidArgument | ErrorCode::Decode => StatusCode::BAD_REQUEST,
                ErrorCode::Conflict => StatusCode::CONFLICT,
                ErrorCode::Unsupported => StatusCode::NOT_IMPLEMENTED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The message of the error body. Module errors keep their bus code when it is not
    /// implied by the status (`Unavailable: ...`, `Timeout: ...`).
    pub fn message(&self) -> String {
        match self {
            ApiError::Module(e) => match e.code {
                ErrorCode::NotFound
                | ErrorCode::InvalidArgument
                | ErrorCode::Conflict
                | ErrorCode::Unsupported => e.message.clone(),
                _ => self.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// The error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: i64::from(self.code().as_u16()),
            message: self.message(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code(), Json(self.body())).into_response()
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address is malformed.
    #[error("bad --imageapi address {0:?}: expected HOST:PORT or unix:/path")]
    Address(String),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file could not be read or used.
    #[error("TLS: {what}")]
    Tls {
        /// What failed.
        what: String,
    },
}
