//! The router and its OpenAPI document, built together from the handlers' `#[utoipa::path]`
//! annotations (utoipa-axum's `routes!`), so every served path is documented and the
//! document is never written by hand. Paths are relative to [`BASE`], ImageAPI's
//! `basePath`; the document itself is served at `BASE/swagger.json`.

use crate::model::{
    Attach, AttachIscsi, AttachKind, AttachLocal, AttachLoopback, AttachRbd, Base, Container,
    ContainerState, ErrorBody, Lower, Mount, MountAttach, MountBind, MountKind, MountNfs,
    MountOverlay, MountRbd, Namespace, Rbd, RbdOptions,
};
use crate::state::AppState;
use crate::{v1, v2};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// ImageAPI's base path (the same in v0.1 and v0.2).
pub const BASE: &str = "/imageapi/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ImageAPI (imagebus gateway)",
        version = "0.2.0",
        description = "ImageAPI v0.1 and v0.2 served over imagebus's attach@1, mount@1 and container@1. Differences from ImageAPI: docs/imageapi.md."
    ),
    servers((url = "/imageapi/v1")),
    components(schemas(
        ErrorBody, Attach, AttachKind, AttachRbd, RbdOptions, Rbd, Base, AttachLoopback,
        AttachLocal, AttachIscsi, Mount, MountKind, MountAttach, MountRbd, MountOverlay,
        MountBind, MountNfs, Lower, Container, ContainerState, Namespace
    ))
)]
struct ApiDoc;

/// Every route, documented: the router (with state) and its document.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(v1::attach::list_rbds, v1::attach::map_rbd))
        .routes(routes!(v1::attach::get_rbd, v1::attach::unmap_rbd))
        .routes(routes!(v1::mount::list_mounts_rbd, v1::mount::mount_rbd))
        .routes(routes!(v1::mount::get_mount_rbd, v1::mount::unmount_rbd))
        .routes(routes!(
            v1::mount::list_mounts_overlay,
            v1::mount::mount_overlay
        ))
        .routes(routes!(
            v1::mount::get_mount_overlay,
            v1::mount::unmount_overlay
        ))
        .routes(routes!(
            v1::container::get_container,
            v1::container::delete_container
        ))
        .routes(routes!(v1::container::set_container_state))
        .routes(routes!(
            v1::container::get_container_byname,
            v1::container::delete_container_byname
        ))
        .routes(routes!(v1::container::set_container_state_byname))
        .routes(routes!(
            v2::attach::list_attachments,
            v2::attach::attach,
            v2::attach::detach
        ))
        .routes(routes!(
            v2::mount::list_mounts,
            v2::mount::mount,
            v2::mount::unmount
        ))
        .routes(routes!(
            v2::container::list_containers,
            v2::container::create_container,
            v2::container::delete_container,
            v2::container::patch_container
        ))
        .split_for_parts()
}

/// The document with `GET /swagger.json` added (served by [`crate::server::app`]).
pub fn document(api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let (_, mut doc) = OpenApiRouter::<()>::with_openapi(api)
        .routes(routes!(swagger_doc_only))
        .split_for_parts();
    doc.info.version = "0.2.0".into();
    doc
}

/// Documents `GET /swagger.json` (served by [`crate::server::app`] from the built document).
#[utoipa::path(get, path = "/swagger.json", tag = "meta", operation_id = "swagger",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json")))]
async fn swagger_doc_only() {}
