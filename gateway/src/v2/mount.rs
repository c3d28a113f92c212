//! `/mount`.

use crate::error::ApiError;
use crate::extract::{parse_json, read_body, JsonBody, QueryArgs};
use crate::model::{ErrorBody, Mount, MountKind};
use crate::render;
use crate::state::AppState;
use crate::translate::mount_kind;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

/// Which mounts `GET /mount` returns.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MountQuery {
    /// Only this mount (404 if there is none).
    pub id: Option<i64>,
    /// Only this kind (`rbd`: mounts of RBD attachments).
    pub kind: Option<MountKind>,
}

/// Which mount `DELETE /mount` unmounts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The mount (v0.1: a `{"id": N}` body instead).
    pub id: Option<i64>,
    /// Unmount even while others hold it.
    pub force: Option<bool>,
}

/// Lists mounts, or one by id.
#[utoipa::path(get, path = "/mount", tag = "v0.2", operation_id = "list_mounts",
    params(MountQuery),
    responses((status = 200, body = Vec<Mount>), (status = 404, body = ErrorBody)))]
pub async fn list_mounts(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<MountQuery>,
) -> Result<Json<Vec<Mount>>, ApiError> {
    let index = s.modules.mount_index().await?;
    let list: Vec<_> = match q.id {
        Some(id) => vec![s.modules.get_mount(id).await?],
        None => index.values().cloned().collect(),
    };
    let mut out = Vec::new();
    for m in &list {
        let keep = match q.kind {
            None => true,
            Some(MountKind::Rbd) => s.modules.is_rbd_mount(m).await,
            Some(k) => mount_kind(&m.kind) == k,
        };
        if keep {
            out.push(render::mount(m, &index));
        }
    }
    Ok(Json(out))
}

/// Creates a mount (`attach`, `overlay`, `bind`, v0.1's `rbd`; `nfs` and `uri` answer 501).
#[utoipa::path(post, path = "/mount", tag = "v0.2", operation_id = "mount",
    request_body = Mount,
    responses((status = 201, body = Mount), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 501, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn mount(
    State(s): State<AppState>,
    JsonBody(m): JsonBody<Mount>,
) -> Result<(StatusCode, Json<Mount>), ApiError> {
    let info = s.modules.create_mount(&m).await?;
    let index = s.modules.mount_index().await?;
    let mut out = render::mount(&info, &index);
    // GET cannot tell a bind's path; the reply to its creation echoes it.
    if let (Some(b), Some(req)) = (out.bind.as_mut(), m.bind.as_ref()) {
        b.path = req.path.clone();
        b.recursive = req.recursive;
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// Unmounts (409 while others hold it, unless `force`). The id is a query argument; a v0.1
/// `{"id": N}` body is accepted instead.
#[utoipa::path(delete, path = "/mount", tag = "v0.2", operation_id = "unmount",
    params(DeleteQuery),
    responses((status = 200, body = Mount), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn unmount(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<DeleteQuery>,
    req: Request,
) -> Result<Json<Mount>, ApiError> {
    let id = match q.id {
        Some(id) => id,
        None => {
            let body = read_body(req, &()).await?;
            let m: Mount = parse_json(&body)
                .map_err(|e| ApiError::BadRequest(format!("query id is required ({e})")))?;
            m.id.ok_or_else(|| ApiError::BadRequest("id: a mount id is required".into()))?
        }
    };
    let index = s.modules.mount_index().await?;
    let info = s.modules.delete_mount(id, q.force.unwrap_or(false)).await?;
    Ok(Json(render::mount(&info, &index)))
}
