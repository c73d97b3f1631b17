//! `GET /audit?client=&cursor=&limit=`: the audit log, newest first — who (key id and kind),
//! what, on which object, when and from where. An admin reads every row (or one client's with
//! `?client=`); a client reads the rows about its own data, with the key ids and addresses
//! of admins and operators left out.
//!
//! The rows are written by the store in the transaction of each change (see
//! `rubra_store::AuditStore`); this route only reads them.

use super::Page;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::State;
use rubra_store::{ActorKind, AuditPage, AuditRecord, ClientId, Principal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Rows per page unless `limit` says otherwise; `limit` is 1..=[`MAX_LIMIT`].
const DEFAULT_LIMIT: u32 = 100;
/// Most rows per page.
const MAX_LIMIT: u32 = 1000;

/// `GET /audit` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An admin's: only this client's rows.
    client: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Rows per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Who acted, as an audit row shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `admin`, `client` or `operator`.
    kind: &'static str,
    /// The id of the key that acted; null when not shown to this caller or none was used.
    key_id: Option<String>,
}

/// One row of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRow {
    /// Its place in the log; rows are listed newest (highest) first.
    seq: i64,
    /// When (RFC 3339, UTC, ms).
    at: String,
    /// The client whose data it touched, if any.
    client_id: Option<String>,
    /// What was done (`client.create`, `key.revoke`, …).
    action: String,
    /// On which object.
    target: String,
    /// Who.
    actor: AuditActor,
    /// From which address; null when not shown to this caller.
    peer: Option<String>,
    /// What else was recorded.
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
}

/// `GET /audit`: a page of the audit log, newest first; `next_cursor` continues it (null on
/// the last page).
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "A page of the audit log, newest first", body = Page<AuditRow>)),
)]
#[tracing::instrument(name = "http.audit.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditRow>>> {
    let asked = q
        .client
        .as_deref()
        .map(|c| ClientId::parse(c).ok_or_else(|| ApiError::not_found("client")))
        .transpose()?;
    let client = match (&who, asked) {
        (Principal::Admin, asked) => asked,
        (Principal::Client(own), None) => Some(own.clone()),
        (Principal::Client(own), Some(asked)) if asked == *own => Some(asked),
        // Another client's log is as absent as a client that does not exist.
        (Principal::Client(_), Some(_)) => return Err(ApiError::not_found("client")),
    };
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidCursor,
                    "cursor is the next_cursor of a previous page",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let rows = state
        .store
        .list_audit(&AuditPage {
            client,
            before,
            limit,
        })
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    let items = rows.iter().map(|r| row_json(r, who.is_admin())).collect();
    Ok(Json(Page {
        items,
        next_cursor: next,
    }))
}

/// One row as shown; a client is not shown which admin key or address acted on its data.
fn row_json(r: &AuditRecord, to_admin: bool) -> AuditRow {
    let own_side = r.actor.kind == ActorKind::Client;
    let (key_id, peer) = if to_admin || own_side {
        (
            r.actor.key_id.as_ref().map(|k| k.as_str().to_owned()),
            r.actor.peer.map(|p| p.to_string()),
        )
    } else {
        (None, None)
    };
    AuditRow {
        seq: r.seq,
        at: format_ms(r.at),
        client_id: r.client_id.as_ref().map(ToString::to_string),
        action: r.action.clone(),
        target: r.target.clone(),
        actor: AuditActor {
            kind: r.actor.kind.as_str(),
            key_id,
        },
        peer,
        detail: r.detail.clone(),
    }
}
