//! Client ID Metadata Documents: a client whose `client_id` is an https URL publishes
//! its metadata there. Fetched with a timeout and a size limit, validated, and cached
//! for as long as the response's `Cache-Control: max-age` says (bounded).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::oauth::{ClientMetadata, Source, ValidClient};
use moka::sync::Cache;
use moka::Expiry;
use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BYTES: usize = 64 * 1024;
const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
struct Entry {
    client: Arc<ValidClient>,
    ttl: Duration,
}

struct ByEntry;

impl Expiry<String, Entry> for ByEntry {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct CimdFetcher {
    http: reqwest::Client,
    cache: Cache<String, Entry>,
    allow_http_loopback: bool,
}

impl std::fmt::Debug for CimdFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CimdFetcher").finish_non_exhaustive()
    }
}

impl CimdFetcher {
    pub fn new(allow_http_loopback: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // Names are resolved here and only public addresses are dialled (no SSRF into
            // the server's own network through DNS).
            .dns_resolver(Arc::new(PublicOnly {
                allow_loopback: allow_http_loopback,
            }))
            // A redirect could point the server anywhere; the document must live at its id.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            cache: Cache::builder().max_capacity(10_000).expire_after(ByEntry).build(),
            allow_http_loopback,
        }
    }

    /// Whether `client_id` is a metadata-document URL (as opposed to a registered id).
    pub fn is_document_id(client_id: &str) -> bool {
        client_id.starts_with("https://") || client_id.starts_with("http://")
    }

    /// The validated metadata behind `client_id`. The error is shown to the user / client.
    pub async fn resolve(&self, client_id: &str) -> Result<Arc<ValidClient>, String> {
        if let Some(hit) = self.cache.get(client_id) {
            return Ok(hit.client);
        }
        self.check_url(client_id)?;
        let resp = self
            .http
            .get(client_id)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("could not fetch the client metadata document: {}", without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the client metadata document answered HTTP {}",
                resp.status().as_u16()
            ));
        }
        let ttl = cache_ttl(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()));
        let body = read_limited(resp).await?;
        let meta: ClientMetadata = serde_json::from_slice(&body)
            .map_err(|e| format!("the client metadata document is not valid JSON: {e}"))?;
        let client = meta
            .validate(Source::Document, Some(client_id))
            .map_err(|e| format!("the client metadata document is invalid: {e}"))?;
        let client = Arc::new(client);
        if let Some(ttl) = ttl {
            self.cache.insert(
                client_id.to_owned(),
                Entry {
                    client: client.clone(),
                    ttl,
                },
            );
        }
        Ok(client)
    }

    fn check_url(&self, client_id: &str) -> Result<(), String> {
        let url = Url::parse(client_id).map_err(|_| "client_id is not a valid URL".to_owned())?;
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err("client_id URL has no host".into()),
        };
        let scheme_ok = match url.scheme() {
            "https" => !loopback || self.allow_http_loopback,
            "http" => loopback && self.allow_http_loopback,
            _ => false,
        };
        if !scheme_ok {
            return Err("a metadata-document client_id must be an https URL".into());
        }
        // Private addresses are not documents on the internet; refusing them keeps the
        // fetch from probing the server's own network.
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !dialable(ip, self.allow_http_loopback)) {
            return Err("a metadata-document client_id must not name a private address".into());
        }
        if url.path() == "/" || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err("a metadata-document client_id must have a path and no fragment or credentials".into());
        }
        if client_id.contains("/./") || client_id.contains("/../") {
            return Err("a metadata-document client_id must not contain dot segments".into());
        }
        Ok(())
    }
}

/// Whether the fetcher may connect to `ip`: public unicast only (loopback too in tests).
pub(crate) fn dialable(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                return allow_loopback;
            }
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return dialable(IpAddr::V4(v4), allow_loopback);
            }
            if v6.is_loopback() {
                return allow_loopback;
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064
                || first == 0)
        }
    }
}

pub(crate) struct PublicOnly {
    pub(crate) allow_loopback: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| dialable(a.ip(), allow))
                .collect();
            if addrs.is_empty() {
                return Err("the host has no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Bounded `max-age`; `None` when the document must not be cached.
fn cache_ttl(header: Option<&str>) -> Option<Duration> {
    let Some(h) = header else { return Some(DEFAULT_TTL) };
    let mut ttl = DEFAULT_TTL;
    for directive in h.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return None;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            ttl = v
                .trim_matches('"')
                .parse()
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TTL);
        }
    }
    Some(ttl.clamp(MIN_TTL, MAX_TTL))
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err("the client metadata document is too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("could not read the client metadata document: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err("the client metadata document is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One text for every network failure: distinct texts would let a caller map which
/// hosts and ports exist.
fn without_url(_e: &reqwest::Error) -> String {
    "request failed".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_headers_bound_the_lifetime() {
        assert_eq!(cache_ttl(None), Some(DEFAULT_TTL));
        assert_eq!(cache_ttl(Some("public, max-age=600")), Some(Duration::from_secs(600)));
        assert_eq!(cache_ttl(Some("max-age=1")), Some(MIN_TTL));
        assert_eq!(cache_ttl(Some("max-age=99999999")), Some(MAX_TTL));
        assert_eq!(cache_ttl(Some("no-store")), None);
    }

    #[test]
    fn only_public_https_documents_unless_loopback_is_allowed() {
        let strict = CimdFetcher::new(false);
        assert!(strict.check_url("https://client.example/meta.json").is_ok());
        for bad in [
            "http://client.example/meta.json",
            "https://client.example/",
            "https://client.example/meta.json#x",
            "http://127.0.0.1:9000/client.json",
            "https://10.0.0.5/client.json",
            "https://user:pw@client.example/meta.json",
            "https://[::ffff:127.0.0.1]:8443/client.json",
            "https://[::ffff:7f00:1]/client.json",
            "https://[fe80::1]/client.json",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/client.json",
            "https://[::1]/client.json",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
        let testing = CimdFetcher::new(true);
        assert!(testing.check_url("http://127.0.0.1:9000/client.json").is_ok());
        assert!(testing.check_url("http://client.example/meta.json").is_err());
    }
}
