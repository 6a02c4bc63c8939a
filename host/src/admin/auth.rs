//! The admin token: every `/admin/*` route and `/metrics` need it as a bearer
//! token, compared in constant time.

use super::{AdminError, AdminState};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

pub(super) async fn authorize(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let Some(token) = &state.token else {
        return Err(AdminError::Unauthorized(
            "the admin API is disabled: set [server] admin_token",
        ));
    };
    if bearer_is(request.headers(), token) {
        return Ok(next.run(request).await);
    }
    Err(AdminError::Unauthorized(
        "Authorization: Bearer <admin_token> required",
    ))
}

/// Whether a request carries `Authorization: Bearer <token>`.
pub(super) fn bearer_is(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// Whether two secrets are equal, in time that depends on neither: their
/// SHA-256 digests are compared byte by byte, so not even the length leaks.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
