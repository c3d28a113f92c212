//! `/attach/rbd` and `/attach/rbd/{id}`.

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::extract::PathArgs as Path;
use crate::model::{ErrorBody, Rbd};
use crate::render;
use crate::state::AppState;
use crate::translate::{no_id, v1_rbd_spec};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

/// Lists the RBD attachments.
#[utoipa::path(get, path = "/attach/rbd", tag = "v0.1", operation_id = "list_rbds",
    responses((status = 200, body = Vec<Rbd>), (status = 500, body = ErrorBody)))]
pub async fn list_rbds(State(s): State<AppState>) -> Result<Json<Vec<Rbd>>, ApiError> {
    let list = s.modules.attach.list().await?;
    Ok(Json(list.iter().filter_map(render::v1_rbd).collect()))
}

/// Maps an RBD image (`options.name` and `options.secret` are required).
#[utoipa::path(post, path = "/attach/rbd", tag = "v0.1", operation_id = "map_rbd",
    request_body = Rbd,
    responses((status = 201, body = Rbd), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn map_rbd(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<Rbd>,
) -> Result<(StatusCode, Json<Rbd>), ApiError> {
    no_id(r.id, "rbd")?;
    let spec = v1_rbd_spec(&r, "rbd")?;
    let info = s.modules.create_attach_spec(spec).await?;
    let out = render::v1_rbd(&info)
        .ok_or_else(|| ApiError::Internal("the attachment is not an RBD image".into()))?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn get_rbd_info(s: &AppState, id: i64) -> Result<Rbd, ApiError> {
    let info = s.modules.get_attach(id).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound(format!("no rbd attachment with id {id}")),
        other => other,
    })?;
    render::v1_rbd(&info)
        .ok_or_else(|| ApiError::NotFound(format!("no rbd attachment with id {id}")))
}

/// One RBD attachment.
#[utoipa::path(get, path = "/attach/rbd/{id}", tag = "v0.1", operation_id = "get_rbd",
    params(("id" = i64, Path, description = "attachment id")),
    responses((status = 200, body = Rbd), (status = 404, body = ErrorBody)))]
pub async fn get_rbd(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Rbd>, ApiError> {
    Ok(Json(get_rbd_info(&s, id).await?))
}

/// Unmaps an RBD attachment (409 while a mount uses it).
#[utoipa::path(delete, path = "/attach/rbd/{id}", tag = "v0.1", operation_id = "unmap_rbd",
    params(("id" = i64, Path, description = "attachment id")),
    responses((status = 204, description = "unmapped"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn unmap_rbd(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    get_rbd_info(&s, id).await?;
    s.modules.delete_attach(id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
