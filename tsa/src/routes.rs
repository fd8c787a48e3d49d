//! Every route of the authority, in one place.
//!
//! | route          | what                                                            |
//! |----------------|-----------------------------------------------------------------|
//! | `POST /`       | RFC 3161 over HTTP: application/timestamp-query in, -reply out   |
//! | `POST /tsa`    | the same, for clients configured with a path                    |
//! | `GET /certs`   | the TSA certificate chain as PEM                                |
//! | `GET /healthz` | 200 when tokens can be issued, 503 when not (clock, archive)    |
//! | `GET /metrics` | Prometheus text format                                          |

use crate::state::App;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The router, without a socket, so tests drive it directly.
pub fn app(state: Arc<App>) -> Router {
    Router::new()
        .route("/", post(crate::timestamp::handle))
        .route("/tsa", post(crate::timestamp::handle))
        .route("/certs", get(crate::info::certs))
        .route("/healthz", get(crate::info::healthz))
        .route("/metrics", get(crate::info::metrics))
        .with_state(state)
}
