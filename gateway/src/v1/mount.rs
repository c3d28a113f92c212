//! `/mount/rbd[/{id}]` and `/mount/overlay[/{id}]`.

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::extract::PathArgs as Path;
use crate::model::{ErrorBody, Mount, MountKind, MountOverlay, MountRbd};
use crate::render;
use crate::state::AppState;
use crate::translate::Build;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imagebus_schema::mount::{MountInfo, MountSpec};

async fn get_kind(s: &AppState, id: i64, kind: &str) -> Result<MountInfo, ApiError> {
    let what = format!("{kind} mount");
    let m = s.modules.get_mount(id).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound(format!("no {what} with id {id}")),
        other => other,
    })?;
    let ok = match kind {
        "rbd" => s.modules.is_rbd_mount(&m).await,
        _ => m.kind == kind,
    };
    if !ok {
        return Err(ApiError::NotFound(format!("no {what} with id {id}")));
    }
    Ok(m)
}

/// Lists the mounts of RBD attachments.
#[utoipa::path(get, path = "/mount/rbd", tag = "v0.1", operation_id = "list_mounts_rbd",
    responses((status = 200, body = Vec<MountRbd>), (status = 500, body = ErrorBody)))]
pub async fn list_mounts_rbd(State(s): State<AppState>) -> Result<Json<Vec<MountRbd>>, ApiError> {
    let mut out = Vec::new();
    for m in s.modules.mount.list().await? {
        if s.modules.is_rbd_mount(&m).await {
            out.push(render::v1_mount_rbd(&m));
        }
    }
    Ok(Json(out))
}

/// Mounts the filesystem of an RBD attachment (`rbd_id`, or `id` as in the v0.1
/// tutorial, or an inline `rbd`).
#[utoipa::path(post, path = "/mount/rbd", tag = "v0.1", operation_id = "mount_rbd",
    request_body = MountRbd,
    responses((status = 201, body = MountRbd), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn mount_rbd(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<MountRbd>,
) -> Result<(StatusCode, Json<MountRbd>), ApiError> {
    let source = Build::new(&s.modules).v1_rbd_mount(&r, "mount_rbd").await?;
    let info = s
        .modules
        .create_mount_spec(MountSpec { name: None, source })
        .await?;
    Ok((StatusCode::CREATED, Json(render::v1_mount_rbd(&info))))
}

/// One mount of an RBD attachment.
#[utoipa::path(get, path = "/mount/rbd/{id}", tag = "v0.1", operation_id = "get_mount_rbd",
    params(("id" = i64, Path, description = "mount id")),
    responses((status = 200, body = MountRbd), (status = 404, body = ErrorBody)))]
pub async fn get_mount_rbd(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<MountRbd>, ApiError> {
    Ok(Json(render::v1_mount_rbd(&get_kind(&s, id, "rbd").await?)))
}

/// Unmounts a mount of an RBD attachment (409 while in use).
#[utoipa::path(delete, path = "/mount/rbd/{id}", tag = "v0.1", operation_id = "unmount_rbd",
    params(("id" = i64, Path, description = "mount id")),
    responses((status = 204, description = "unmounted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn unmount_rbd(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    get_kind(&s, id, "rbd").await?;
    s.modules.delete_mount(id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the overlays.
#[utoipa::path(get, path = "/mount/overlay", tag = "v0.1", operation_id = "list_mounts_overlay",
    responses((status = 200, body = Vec<MountOverlay>), (status = 500, body = ErrorBody)))]
pub async fn list_mounts_overlay(
    State(s): State<AppState>,
) -> Result<Json<Vec<MountOverlay>>, ApiError> {
    let list = s.modules.mount.list().await?;
    Ok(Json(
        list.iter()
            .filter(|m| m.kind == "overlay")
            .map(render::v1_mount_overlay)
            .collect(),
    ))
}

/// Mounts an overlay over `lower` (mount ids or mount objects, uppermost first).
#[utoipa::path(post, path = "/mount/overlay", tag = "v0.1", operation_id = "mount_overlay",
    request_body = MountOverlay,
    responses((status = 201, body = MountOverlay), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn mount_overlay(
    State(s): State<AppState>,
    JsonBody(o): JsonBody<MountOverlay>,
) -> Result<(StatusCode, Json<MountOverlay>), ApiError> {
    if o.id.is_some_and(|id| id != 0) {
        return Err(ApiError::BadRequest(
            "mount_overlay.id: ids are assigned by the server".into(),
        ));
    }
    let m = Mount {
        kind: Some(MountKind::Overlay),
        overlay: Some(MountOverlay {
            id: None,
            lower: o.lower.clone(),
            mountpoint: None,
            upperdir: None,
            workdir: None,
            refs: None,
        }),
        ..Mount::default()
    };
    let info = s.modules.create_mount(&m).await?;
    Ok((StatusCode::CREATED, Json(render::v1_mount_overlay(&info))))
}

/// One overlay.
#[utoipa::path(get, path = "/mount/overlay/{id}", tag = "v0.1", operation_id = "get_mount_overlay",
    params(("id" = i64, Path, description = "mount id")),
    responses((status = 200, body = MountOverlay), (status = 404, body = ErrorBody)))]
pub async fn get_mount_overlay(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<MountOverlay>, ApiError> {
    Ok(Json(render::v1_mount_overlay(
        &get_kind(&s, id, "overlay").await?,
    )))
}

/// Unmounts an overlay (409 while in use); what it defined inline goes with it.
#[utoipa::path(delete, path = "/mount/overlay/{id}", tag = "v0.1", operation_id = "unmount_overlay",
    params(("id" = i64, Path, description = "mount id")),
    responses((status = 204, description = "unmounted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn unmount_overlay(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    get_kind(&s, id, "overlay").await?;
    s.modules.delete_mount(id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
