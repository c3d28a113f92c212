//! `/container/{id}`, `/container/{id}/{state}`, `/container/byname/{name}` and
//! `/container/byname/{name}/{state}`. State changes are `GET`s in v0.1.

use crate::error::ApiError;
use crate::extract::PathArgs as Path;
use crate::model::{Container, ContainerState, ErrorBody};
use crate::state::AppState;
use crate::translate::by_id;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imagebus_schema::Selector;

fn by_name(name: &str) -> Result<Selector, ApiError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ApiError::BadRequest(format!(
            "name: {name:?} may only contain A-Z a-z 0-9 . - _"
        )));
    }
    Ok(Selector::Name(name.to_string()))
}

fn parse_state(state: &str) -> Result<ContainerState, ApiError> {
    crate::extract::parse_json::<ContainerState>(format!("{state:?}").as_bytes()).map_err(|_| {
        ApiError::BadRequest(format!(
            "state: unknown state {state:?} (running or exited)"
        ))
    })
}

async fn get(s: &AppState, sel: Selector) -> Result<Json<Container>, ApiError> {
    let info = s.modules.get_container(sel).await?;
    Ok(Json(s.modules.render_container(&info).await?))
}

async fn set(s: &AppState, sel: Selector, state: &str) -> Result<Json<Container>, ApiError> {
    let info = s.modules.set_state(sel, parse_state(state)?).await?;
    Ok(Json(s.modules.render_container(&info).await?))
}

async fn delete(s: &AppState, sel: Selector) -> Result<StatusCode, ApiError> {
    s.modules.delete_container(sel, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One container.
#[utoipa::path(get, path = "/container/{id}", tag = "v0.1", operation_id = "get_container",
    params(("id" = i64, Path, description = "container id")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
pub async fn get_container(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Container>, ApiError> {
    get(&s, by_id(id, "container")?).await
}

/// Deletes a container (409 while running or stopping); what it defined inline goes with it.
#[utoipa::path(delete, path = "/container/{id}", tag = "v0.1", operation_id = "delete_container",
    params(("id" = i64, Path, description = "container id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_container(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    delete(&s, by_id(id, "container")?).await
}

/// Requests a state: `running` starts the container, `exited` stops it (answering once
/// the init has exited).
#[utoipa::path(get, path = "/container/{id}/{state}", tag = "v0.1", operation_id = "set_container_state",
    params(("id" = i64, Path, description = "container id"),
        ("state" = ContainerState, Path, description = "running or exited")),
    responses((status = 200, body = Container), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn set_container_state(
    State(s): State<AppState>,
    Path((id, state)): Path<(i64, String)>,
) -> Result<Json<Container>, ApiError> {
    set(&s, by_id(id, "container")?, &state).await
}

/// One container, by name.
#[utoipa::path(get, path = "/container/byname/{name}", tag = "v0.1", operation_id = "get_container_byname",
    params(("name" = String, Path, description = "container name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
pub async fn get_container_byname(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Container>, ApiError> {
    get(&s, by_name(&name)?).await
}

/// Deletes a container by name (409 while running or stopping).
#[utoipa::path(delete, path = "/container/byname/{name}", tag = "v0.1", operation_id = "delete_container_byname",
    params(("name" = String, Path, description = "container name")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_container_byname(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, by_name(&name)?).await
}

/// Requests a state of a container by name.
#[utoipa::path(get, path = "/container/byname/{name}/{state}", tag = "v0.1", operation_id = "set_container_state_byname",
    params(("name" = String, Path, description = "container name"),
        ("state" = ContainerState, Path, description = "running or exited")),
    responses((status = 200, body = Container), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub async fn set_container_state_byname(
    State(s): State<AppState>,
    Path((name, state)): Path<(String, String)>,
) -> Result<Json<Container>, ApiError> {
    set(&s, by_name(&name)?, &state).await
}
