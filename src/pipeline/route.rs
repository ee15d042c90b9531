//! The runtime route: a compiled [`config::Route`] spec plus the live resources built
//! from it (today its rate-limit buckets; next JWKS caches).
//!
//! Config compiles to plain data; this step turns the data into state. It runs at start-up
//! and on every reload, and carries state across a reload when the spec it was built from
//! did not change, so a SIGHUP does not forgive every rate-limited sender.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use crate::config::{self, Settings};
use crate::pipeline::ratelimit::RateLimit;

/// One route as requests see it.
#[derive(Debug)]
pub struct Route {
    spec: Arc<config::Route>,
    /// The route's buckets, when it has a `rate_limit`.
    pub rate_limit: Option<Arc<RateLimit>>,
}

impl Deref for Route {
    type Target = config::Route;

    fn deref(&self) -> &config::Route {
        &self.spec
    }
}

impl Route {
    /// The compiled spec this route was built from.
    pub fn spec(&self) -> &Arc<config::Route> {
        &self.spec
    }
}

/// Builds the route table of `settings`, by path. A route of `previous` with the same
/// name and the same `rate_limit` spec hands its buckets over.
pub fn build(
    settings: &Settings,
    previous: Option<&HashMap<String, Arc<Route>>>,
) -> HashMap<String, Arc<Route>> {
    let old: HashMap<&str, &Route> = previous
        .into_iter()
        .flat_map(|routes| routes.values())
        .map(|r| (&*r.name, &**r))
        .collect();
    settings
        .routes
        .iter()
        .map(|spec| {
            let rate_limit = spec.rate_limit.map(|limit| {
                old.get(&*spec.name)
                    .filter(|o| o.spec.rate_limit == Some(limit))
                    .and_then(|o| o.rate_limit.clone())
                    .unwrap_or_else(|| {
                        Arc::new(RateLimit::new(
                            limit.per_second,
                            limit.burst,
                            limit.per_address,
                        ))
                    })
            });
            if let crate::pipeline::auth::Auth::Jwt(verifier) = &spec.auth {
                verifier.start_refresh();
            }
            let route = Route {
                spec: Arc::clone(spec),
                rate_limit,
            };
            (spec.path.clone(), Arc::new(route))
        })
        .collect()
}
