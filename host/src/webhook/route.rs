//! Each key's endpoint as the worker delivers to it: the URL parsed, the secrets decoded.

use std::collections::HashMap;

use crate::config::Config;
use crate::webhook::sign::Signer;
use crate::webhook::ssrf::Guard;

/// One key's endpoint, ready to deliver to.
#[derive(Clone, Debug)]
pub struct Route {
    /// The endpoint URL as configured.
    pub url: String,
    /// The same, parsed.
    pub parsed: reqwest::Url,
    /// Its secrets.
    pub signer: Signer,
}

/// Every key's endpoint, by key id.
pub type Routes = HashMap<String, Route>;

/// The routes of the configuration's keys. An endpoint whose address the SSRF guard will
/// refuse is logged now (every delivery to it will fail with that reason).
pub fn routes(config: &Config) -> Result<Routes, String> {
    let guard = Guard {
        allow_private: config.webhooks.allow_private_targets,
    };
    let mut routes = Routes::new();
    for key in &config.auth.keys {
        let Some(endpoint) = &key.webhook else {
            continue;
        };
        let parsed = reqwest::Url::parse(&endpoint.url)
            .map_err(|e| format!("key {:?}: webhook.url: {e}", key.id))?;
        let signer =
            Signer::new(&endpoint.secrets).map_err(|e| format!("key {:?}: {e}", key.id))?;
        if let Err(refused) = guard.check_literal(&parsed) {
            tracing::error!(key = %key.id, url = %endpoint.url, "webhook target refused: {refused}");
        }
        routes.insert(
            key.id.clone(),
            Route {
                url: endpoint.url.clone(),
                parsed,
                signer,
            },
        );
    }
    Ok(routes)
}
