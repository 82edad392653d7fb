//! The load benchmark's reference point: a bare axum handler that answers every
//! `POST /click2dial/calls` with a fixed `202` body of the host's size, doing nothing else.
//! Prints `listening <addr>` first on stdout.

use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;

const ANSWER: &str = r#"{"status":"queued","contact_ref":"crm-42","recording_ref":"aaaqeayeaudaocajbifqydiob4","recording_url":"http://127.0.0.1:8080/click2dial/recordings/aaaqeayeaudaocajbifqydiob4","notifications_key":"teleforge:notifications:c2d:crm-42","warnings":[]}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening {}", listener.local_addr()?);
    let app = Router::new().route(
        "/click2dial/calls",
        post(|_body: axum::body::Bytes| async {
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                ANSWER,
            )
        }),
    );
    axum::serve(listener, app).await
}
