//! `GET /audit?client=&cursor=&limit=`: the audit log, newest first — who (key id and kind),
//! what, on which object, when and from where. An admin reads every row (or one client's with
//! `?client=`); a client reads the rows about its own data, with the key ids and addresses
//! of admins and operators left out.
//!
//! The rows are written by the store in the transaction of each change (see
//! `rubra_store::AuditStore`); this route only reads them.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::State;
use rubra_store::{ActorKind, AuditPage, AuditRecord, ClientId, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

/// Rows per page unless `limit` says otherwise; `limit` is clamped to 1..=[`MAX_LIMIT`].
const DEFAULT_LIMIT: u32 = 100;
/// Most rows per page.
const MAX_LIMIT: u32 = 1000;

/// `GET /audit` query.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    client: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /audit`: a page of the audit log, newest first; `next_cursor` continues it (null on
/// the last page).
#[tracing::instrument(name = "http.audit.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
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
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor is the next_cursor of a previous page",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
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
    let items: Vec<Value> = rows.iter().map(|r| row_json(r, who.is_admin())).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

/// One row as shown; a client is not shown which admin key or address acted on its data.
fn row_json(r: &AuditRecord, to_admin: bool) -> Value {
    let own_side = r.actor.kind == ActorKind::Client;
    let (key_id, peer) = if to_admin || own_side {
        (
            r.actor.key_id.as_ref().map(|k| k.as_str().to_owned()),
            r.actor.peer.map(|p| p.to_string()),
        )
    } else {
        (None, None)
    };
    json!({
        "seq": r.seq,
        "at": format_ms(r.at),
        "client_id": r.client_id,
        "action": r.action,
        "target": r.target,
        "actor": { "kind": r.actor.kind.as_str(), "key_id": key_id },
        "peer": peer,
        "detail": r.detail,
    })
}
