//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! attributes as `routes::api` mounts them, so a route and its entry cannot part ways.
//! Served at `GET /openapi.json` and printed by `rubra openapi`.

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder, content::ContentBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The parts of the document that no handler states: title, security scheme, error shape.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rubra",
        description = "Red levels of images, events and alerts, CSV sums, JSON watches. \
                       Every failure answers `{\"error\": {\"code\", \"message\"}}`; \
                       every list `{\"items\", \"next_cursor\"}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    security(("bearer" = [])),
)]
pub(crate) struct ApiDoc;

/// The `bearer` scheme: `Authorization: Bearer <key>`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
    }
}

/// Every operation answers its failures in the one error shape: each gets a `default`
/// response naming [`ErrorBody`] (beside the statuses it documents itself).
struct ErrorResponses;

/// The `default` response every operation shares.
fn error_response() -> Response {
    ResponseBuilder::new()
        .description("An error: `code` says which (see the `ErrorCode` schema)")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build()
}

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .responses
            .insert("Error".to_owned(), RefOr::T(error_response()));
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                op.responses.responses.insert(
                    "default".to_owned(),
                    RefOr::Ref(utoipa::openapi::Ref::from_response_name("Error")),
                );
            }
        }
    }
}

/// The `Idempotency-Key` header on each `POST` the idempotency middleware serves (its own
/// list of routes, so the document follows it).
struct IdempotencyKeys;

impl Modify for IdempotencyKeys {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        for route in crate::idempotency::ROUTES {
            let Some(op) = doc
                .paths
                .paths
                .get_mut(route)
                .and_then(|item| item.post.as_mut())
            else {
                continue;
            };
            let max = crate::idempotency::MAX_KEY_BYTES;
            op.parameters.get_or_insert_with(Vec::new).push(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .description(Some(
                        "Retry-safe: the same key with the same request within 24 h answers \
                         the first answer again (`Idempotency-Replayed: true`); with another \
                         request, 422 `idempotency_key_reused`",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(max))
                            .pattern(Some(format!("^[!-~]{{1,{max}}}$"))),
                    ))
                    .build(),
            );
        }
    }
}

/// Gives every operation a unique `operationId` made of its method and path
/// (`get_clients_id_keys`): handler names repeat across resources (`list`, `get`).
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let words: Vec<String> = path
                .split(['/', '-', '.', '{', '}'])
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect();
            let base = if words.is_empty() {
                "dashboard".to_owned()
            } else {
                words.join("_")
            };
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
            ] {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{base}"));
                }
            }
        }
    }
}

/// The collections whose `POST` answers 201 (a job: 202) with the new item's `id`, readable
/// (and, but for clients, deletable) at `{collection}/{id}`.
const LINKED: [&str; 4] = ["/clients", "/jobs", "/subscriptions", "/watches"];

/// Links the 201/202 answer of each [`LINKED`] `POST` to the `GET` and `DELETE` of the item it
/// made (`id` from the answer's body), so clients and Schemathesis's stateful phase can
/// follow create → get → delete. Runs after [`OperationIds`], whose ids the links name.
struct Links;

impl Modify for Links {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        for collection in LINKED {
            let item_path = format!("{collection}/{{id}}");
            let Some(item) = doc.paths.paths.get(&item_path) else {
                continue;
            };
            let targets: Vec<(&str, String)> = [("get", &item.get), ("delete", &item.delete)]
                .into_iter()
                .filter_map(|(name, op)| {
                    let id = op.as_ref()?.operation_id.clone()?;
                    Some((name, id))
                })
                .collect();
            let Some(RefOr::T(created)) = doc
                .paths
                .paths
                .get_mut(collection)
                .and_then(|c| c.post.as_mut())
                .and_then(|op| {
                    let answers = &mut op.responses.responses;
                    let status = if answers.contains_key("201") {
                        "201"
                    } else {
                        "202"
                    };
                    answers.get_mut(status)
                })
            else {
                continue;
            };
            for (name, operation_id) in targets {
                created.links.insert(
                    name.to_owned(),
                    RefOr::T(
                        LinkBuilder::new()
                            .operation_id(operation_id)
                            .parameter("id", "$response.body#/id")
                            .description(format!(
                                "The item this request made, by its `id`: {name} it"
                            ))
                            .build(),
                    ),
                );
            }
        }
    }
}

/// The whole document: [`ApiDoc`] with every route `routes::api` mounts.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = crate::routes::api().into_openapi();
    // After the routes are in: these add to operations.
    ErrorResponses.modify(&mut doc);
    IdempotencyKeys.modify(&mut doc);
    OperationIds.modify(&mut doc);
    Links.modify(&mut doc);
    crate::routes::subscriptions::subscription_rules(&mut doc);
    doc
}

/// The document as JSON, rendered once.
static JSON: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    spell_link_fields(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes")
});

/// utoipa 5.5 writes a Link object's fields as `operation_id`, `operation_ref` and
/// `request_body`; OpenAPI spells them `operationId`, `operationRef` and `requestBody`.
fn spell_link_fields(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(from) {
                    link.insert(to.to_owned(), v);
                }
            }
        }
    }
}

/// The document as pretty JSON (what `GET /openapi.json` answers).
pub fn document_json() -> &'static str {
    JSON.as_str()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

/// The RFC 3339 instants the server takes: years 1970 to 9999 in UTC, so 1970 only at offset 0
/// or west of it and 9999 only at offset 0 or east of it.
const INSTANT_PATTERN: &str = concat!(
    "^(?:(?:197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])",
    "-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
    "(?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    "|1970-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
    "(?:\\.[0-9]{1,9})?(?:Z|[+-]00:00|-(?:[01][0-9]|2[0-3]):[0-5][0-9])",
    "|9999-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
    "(?:\\.[0-9]{1,9})?(?:Z|[+-]00:00|\\+(?:[01][0-9]|2[0-3]):[0-5][0-9]))$"
);

/// The schema of an instant a client sends: RFC 3339 text or integer epoch milliseconds.
pub(crate) fn instant_in() -> utoipa::openapi::schema::Schema {
    instant(false)
}

/// [`instant_in`] or `null` (`schema_with` leaves out the field's `nullable`).
pub(crate) fn instant_in_or_null() -> utoipa::openapi::schema::Schema {
    instant(true)
}

fn instant(nullable: bool) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
    };
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .pattern(Some(INSTANT_PATTERN)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(253_402_300_799_999_i64)),
        )
        .description(Some(
            "RFC 3339 (any offset) or integer milliseconds since the epoch, 1970 to 9999",
        ));
    let one_of = if nullable {
        one_of.item(ObjectBuilder::new().schema_type(Type::Null))
    } else {
        one_of
    };
    Schema::OneOf(one_of.build())
}

/// A text schema: `min` to `max` characters matching `pattern` (JSON Schema patterns are not
/// anchored: `\S` means "holds a character that is not white space").
pub(crate) fn text(
    min: Option<usize>,
    max: Option<usize>,
    pattern: Option<&str>,
) -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(min)
        .max_length(max)
        .pattern(pattern)
}

/// An http(s) URL as the egress guard takes it (`rubra_fetch::Guard::parse_url`) for a host
/// that may be reached on the network at large: a name, not an IP literal or `localhost`
/// (those only when `--fetch-allow` lists them).
pub(crate) fn public_url() -> utoipa::openapi::schema::Object {
    url_schema(&format!("^{HTTP}{NAME}{PORT_AND_REST}$"))
}

/// An http(s) URL on a name or an IPv4 literal: whether it may be fetched is the
/// allow-list's to say at run time (403 `fetch_forbidden`).
pub(crate) fn fetch_url() -> utoipa::openapi::schema::Object {
    url_schema(&format!("^{HTTP}({NAME}|{IPV4}){PORT_AND_REST}$"))
}

fn url_schema(pattern: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::SchemaFormat;
    // `KnownFormat::Uri` needs utoipa's `url` feature; the name is all the document carries.
    text(Some(1), None, Some(pattern))
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .build()
}

/// The scheme of an http(s) URL, any case.
const HTTP: &str = "[Hh][Tt][Tt][Pp][Ss]?://";
/// A host name whose last label starts with a letter (so no URL parser takes it for an
/// IPv4 address).
const NAME: &str = "([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*";
/// An IPv4 literal.
const IPV4: &str = "((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// An optional port, then an optional path, query or fragment of visible ASCII.
const PORT_AND_REST: &str = "(:[1-9][0-9]{0,3})?([/?#][!-~]*)?";

/// One event of a `text/event-stream` answer: before OpenAPI 3.2 (`itemSchema`), the schema of
/// a stream describes each event, with its fields as the SSE format names them.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: the streams write events as text.
pub(crate) struct SseEvent {
    /// The event's type (`notification`, `change`).
    event: Option<String>,
    /// Its id: the seq to resume after (`Last-Event-ID`).
    id: Option<String>,
    /// Its data: a JSON document as text.
    data: String,
    /// How long a client waits before it reconnects, in milliseconds.
    retry: Option<u64>,
}

/// Bytes of an image: the schema of a raw image body or a multipart file.
pub(crate) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}
