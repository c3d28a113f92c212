//! ImageAPI's error body.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every failure answers with this body; `code` repeats the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = error)]
pub struct ErrorBody {
    /// The HTTP status code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
}
