//! `/attach`.

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryArgs};
use crate::model::{Attach, AttachKind, ErrorBody};
use crate::render;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

/// Which attachments `GET /attach` returns.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttachQuery {
    /// Only this attachment (404 if there is none).
    pub id: Option<i64>,
    /// Only this kind.
    pub kind: Option<AttachKind>,
}

/// Which attachment `DELETE /attach` detaches.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The attachment.
    pub id: i64,
    /// Detach even while others hold it.
    pub force: Option<bool>,
}

/// Lists attachments, or one by id.
#[utoipa::path(get, path = "/attach", tag = "v0.2", operation_id = "list_attachments",
    params(AttachQuery),
    responses((status = 200, body = Vec<Attach>), (status = 404, body = ErrorBody)))]
pub async fn list_attachments(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<AttachQuery>,
) -> Result<Json<Vec<Attach>>, ApiError> {
    let list = match q.id {
        Some(id) => vec![s.modules.get_attach(id).await?],
        None => s.modules.attach.list().await?,
    };
    Ok(Json(
        list.iter()
            .map(render::attach)
            .filter(|a| q.kind.is_none() || a.kind == q.kind)
            .collect(),
    ))
}

/// Creates an attachment (`rbd`, `loopback`, `local`; `iscsi` answers 501).
#[utoipa::path(post, path = "/attach", tag = "v0.2", operation_id = "attach",
    request_body = Attach,
    responses((status = 201, body = Attach), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 501, body = ErrorBody),
        (status = 500, body = ErrorBody)))]
pub async fn attach(
    State(s): State<AppState>,
    JsonBody(a): JsonBody<Attach>,
) -> Result<(StatusCode, Json<Attach>), ApiError> {
    let info = s.modules.create_attach(&a).await?;
    Ok((StatusCode::CREATED, Json(render::attach(&info))))
}

/// Detaches (409 while others hold it, unless `force`).
#[utoipa::path(delete, path = "/attach", tag = "v0.2", operation_id = "detach",
    params(DeleteQuery),
    responses((status = 200, body = Attach), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn detach(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<DeleteQuery>,
) -> Result<Json<Attach>, ApiError> {
    let info = s
        .modules
        .delete_attach(q.id, q.force.unwrap_or(false))
        .await?;
    Ok(Json(render::attach(&info)))
}
