//! `/container`.

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryArgs};
use crate::model::{Container, ContainerState, ErrorBody};
use crate::render;
use crate::state::AppState;
use crate::translate::by_id;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imagebus_schema::container::ContainerState as OurState;
use imagebus_schema::Selector;
use serde::Deserialize;
use utoipa::IntoParams;

/// Which containers `GET /container` returns.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this container (404 if there is none).
    pub id: Option<i64>,
    /// Only this container (404 if there is none).
    pub name: Option<String>,
    /// Only containers in this state.
    pub state: Option<ContainerState>,
}

/// Which container `DELETE /container` deletes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The container, by id.
    pub id: Option<i64>,
    /// The container, by name.
    pub name: Option<String>,
    /// Stop it first if it runs (ImageAPI answers 501).
    pub force: Option<bool>,
}

/// Which container `PATCH /container` changes, and to what.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatchQuery {
    /// `running` or `exited` (`paused` answers 400).
    pub state: ContainerState,
    /// The container, by id.
    pub id: Option<i64>,
    /// The container, by name.
    pub name: Option<String>,
}

fn selector(id: Option<i64>, name: Option<&String>) -> Result<Selector, ApiError> {
    match (id, name) {
        (Some(id), None) => by_id(id, "container"),
        (None, Some(n)) => Ok(Selector::Name(n.clone())),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "query: give either id or name, not both".into(),
        )),
        (None, None) => Err(ApiError::BadRequest("query: id or name is required".into())),
    }
}

fn our_state(s: ContainerState) -> Option<OurState> {
    match s {
        ContainerState::Created => Some(OurState::Created),
        ContainerState::Running => Some(OurState::Running),
        ContainerState::Stopping => Some(OurState::Stopping),
        ContainerState::Exited => Some(OurState::Exited),
        ContainerState::Dead => Some(OurState::Dead),
        ContainerState::Paused | ContainerState::Restarting => None,
    }
}

/// Lists containers (by id, name or state).
#[utoipa::path(get, path = "/container", tag = "v0.2", operation_id = "list_containers",
    params(ListQuery),
    responses((status = 200, body = Vec<Container>), (status = 404, body = ErrorBody)))]
pub async fn list_containers(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Json<Vec<Container>>, ApiError> {
    let list = match (q.id, &q.name) {
        (None, None) => match q.state {
            Some(st) => match our_state(st) {
                Some(ours) => s.modules.containers(Some(ours)).await?,
                None => Vec::new(),
            },
            None => s.modules.containers(None).await?,
        },
        (id, name) => {
            let c = s
                .modules
                .get_container(selector(id, name.as_ref())?)
                .await?;
            if q.state.is_some_and(|st| our_state(st) != Some(c.state)) {
                Vec::new()
            } else {
                vec![c]
            }
        }
    };
    let index = s.modules.mount_index().await?;
    Ok(Json(
        list.iter().map(|c| render::container(c, &index)).collect(),
    ))
}

/// Creates a container, with any mounts and attachments it defines, and starts it when
/// `state` is `running`.
#[utoipa::path(post, path = "/container", tag = "v0.2", operation_id = "create_container",
    request_body = Container,
    responses((status = 201, body = Container), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 501, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn create_container(
    State(s): State<AppState>,
    JsonBody(c): JsonBody<Container>,
) -> Result<(StatusCode, Json<Container>), ApiError> {
    let info = s.modules.create_container(&c).await?;
    let mut out = s.modules.render_container(&info).await?;
    out.namespaces = c.namespaces.clone();
    Ok((StatusCode::CREATED, Json(out)))
}

/// Deletes a container (409 while running or stopping, unless `force`, which stops it).
#[utoipa::path(delete, path = "/container", tag = "v0.2", operation_id = "delete_container_v2",
    params(DeleteQuery),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_container(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<DeleteQuery>,
) -> Result<Json<Container>, ApiError> {
    let sel = selector(q.id, q.name.as_ref())?;
    let index = s.modules.mount_index().await?;
    let info = s
        .modules
        .delete_container(sel, q.force.unwrap_or(false))
        .await?;
    Ok(Json(render::container(&info, &index)))
}

/// Requests a state: `running` or `exited` (`paused` is not implemented: 400).
#[utoipa::path(patch, path = "/container", tag = "v0.2", operation_id = "set_container_state_v2",
    params(PatchQuery),
    responses((status = 200, body = Container), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn patch_container(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<PatchQuery>,
) -> Result<Json<Container>, ApiError> {
    let sel = selector(q.id, q.name.as_ref())?;
    let info = s.modules.set_state(sel, q.state).await?;
    Ok(Json(s.modules.render_container(&info).await?))
}
