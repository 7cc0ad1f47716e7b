//! Webhooks for traders: a participant registers an HTTPS URL, and every state change of its
//! consignments is POSTed to it, signed with HMAC-SHA256, in order, at least once.
//!
//! - **Signature.** `Ventanilla-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
//!   HMAC-SHA256 over `<t>.<body>` keyed with the secret the registration answered (once).
//!   The receiver recomputes it, and refuses a `t` far from its clock (replays).
//! - **Order and retries.** Each webhook has a cursor, the last status event its URL answered
//!   2xx to. The next event is sent only after that; a refusal, a timeout or an unreachable URL
//!   waits an exponential, jittered delay (`webhooks.initial_backoff_ms` doubling up to
//!   `webhooks.max_backoff_ms`) and sends the same event again, so nothing is skipped.
//! - **At least once.** The cursor moves after the 2xx; a stop between the two sends that
//!   event again. `Ventanilla-Event-Id` lets the receiver drop the repeat.
//! - **Where.** Only `https://` URLs, and only to public addresses: the URL's host is checked at
//!   registration and before each POST, and every address a host name resolves to is checked
//!   when connecting (so DNS cannot point a webhook into the gateway's network), unless
//!   `webhooks.allow_insecure_urls` (for development). Redirects are not followed.
//! - **Independence.** Each webhook is served by its own task: a slow or dead URL delays only
//!   its own events. A deleted webhook is sent nothing after the POST in flight, if any.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use serde_json::json;

use crate::audit;
use crate::clock::{now_millis, rfc3339, Millis};
use crate::outbox::{jitter_seed, RetryPolicy};
use crate::store::{Store, StoreError, Webhook, WebhookRecord, WebhookTarget};

/// Events one webhook is sent per round; the rest wait for the next.
const PAGE: usize = 20;
/// How often the dispatcher looks for due webhooks.
const POLL: Duration = Duration::from_millis(500);
/// Webhooks served at once; the others wait for a turn.
const CONCURRENCY: usize = 32;

/// Registers a webhook for `participant`, unless it has `max` already (`None`); it is sent the
/// status events committed from now on. Audited.
pub async fn register(store: &dyn Store, participant: String, url: String, secret: String, max: usize, at: Millis)
    -> Result<Option<Webhook>, StoreError> {
    store
        .write_with(Vec::new(), move |l| {
            let id = uuid::Uuid::now_v7();
            // From the events committed from now on.
            let cursor = l.latest_status_event()?;
            if !l.insert_webhook(id, &participant, &url, &secret, at, cursor, max)? {
                return Ok(None);
            }
            // Without its query, which may carry the receiver's token.
            let shown = url.split(['?', '#']).next().unwrap_or_default();
            audit::append(l, &audit::entry(at, &participant, "webhook.registered", format!("webhook {id}"), json!({ "url": shown })))?;
            Ok(Some(shown_webhook(WebhookRecord {
                id,
                url,
                created_at: at,
                cursor,
                attempts: 0,
                last_error: None,
                next_attempt_at: 0,
            })))
        })
        .await
}

/// The webhooks due at `now` that `instance` holds or wins the claim on (a lease of
/// [`crate::outbox::CLAIM_LEASE_MS`], renewed at each round): each webhook's events leave from
/// one gateway at a time, in order, and a dead gateway's webhooks are taken over when its
/// leases run out.
pub async fn claim_due(store: &dyn Store, instance: &str, now: Millis) -> Result<Vec<WebhookTarget>, StoreError> {
    let me = instance.to_owned();
    let due = store.read_with(move |l| l.due_webhooks(&me, now)).await?;
    if due.is_empty() {
        return Ok(due);
    }
    let mut ids: Vec<uuid::Uuid> = due.iter().map(|t| t.id).collect();
    ids.sort();
    let me = instance.to_owned();
    let until = now + crate::outbox::CLAIM_LEASE_MS;
    let won = store.write_with(Vec::new(), move |l| l.claim_webhooks(&ids, &me, now, until)).await?;
    Ok(due.into_iter().filter(|t| won.contains(&t.id)).collect())
}

/// `participant`'s webhooks, as shown to it.
pub async fn list(store: &dyn Store, participant: String) -> Result<Vec<Webhook>, StoreError> {
    store.read_with(move |l| Ok(l.webhooks_of(&participant)?.into_iter().map(shown_webhook).collect())).await
}

/// Removes one of `participant`'s webhooks; false when it has none with this id. Audited.
pub async fn delete(store: &dyn Store, participant: String, id: uuid::Uuid, at: Millis) -> Result<bool, StoreError> {
    store
        .write_with(Vec::new(), move |l| {
            let removed = l.delete_webhook(&participant, id)?;
            if removed {
                audit::append(l, &audit::entry(at, &participant, "webhook.deleted", format!("webhook {id}"), json!({})))?;
            }
            Ok(removed)
        })
        .await
}

/// The webhook's URL took every event up to `cursor`; false when it no longer exists.
async fn delivered(store: &dyn Store, id: uuid::Uuid, cursor: i64) -> Result<bool, StoreError> {
    store.write_with(Vec::new(), move |l| l.webhook_delivered(id, cursor)).await
}

fn shown_webhook(r: WebhookRecord) -> Webhook {
    Webhook {
        id: r.id,
        url: r.url,
        created_at: rfc3339(r.created_at),
        delivered_through: r.cursor,
        failed_attempts: r.attempts,
        last_error: r.last_error,
        next_attempt_at: (r.attempts > 0).then(|| rfc3339(r.next_attempt_at)),
    }
}

/// Why a URL cannot be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefused {
    #[error("{0:?} is not an absolute URL in ASCII (an international domain name goes in punycode)")]
    NotAUrl(String),
    #[error("the URL must use https (plain http is allowed only with webhooks.allow_insecure_urls)")]
    NotHttps,
    #[error("{0} is not a public Internet address (loopback, private, shared, link-local, documentation, benchmarking, reserved, multicast, or an IPv6 form of one of these): allowed only with webhooks.allow_insecure_urls")]
    PrivateAddress(String),
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL is longer than 2048 characters")]
    TooLong,
}

/// Checks a URL a participant registers.
pub fn check_url(raw: &str, allow_insecure: bool) -> Result<reqwest::Url, UrlRefused> {
    if raw.len() > 2048 {
        return Err(UrlRefused::TooLong);
    }
    // An RFC 3986 URI is ASCII: an international domain name goes in its punycode form.
    if !raw.is_ascii() || raw.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(UrlRefused::NotAUrl(raw.chars().take(80).collect()));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| UrlRefused::NotAUrl(raw.chars().take(80).collect()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(UrlRefused::NotHttps),
    }
    let host = url.host().ok_or_else(|| UrlRefused::NotAUrl(raw.chars().take(80).collect()))?;
    if !allow_insecure {
        let private = match host {
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
        };
        if private {
            return Err(UrlRefused::PrivateAddress(host.to_string()));
        }
    }
    Ok(url)
}

/// IPv4 blocks of the IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates), and
/// multicast and the former class E: none is a webhook receiver on the public Internet. The
/// few registry entries marked globally reachable (AS112, AMT, 192.0.0.9-10) are refused too:
/// no receiver lives there.
const SPECIAL_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space (CGNAT)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local (cloud metadata)
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation (TEST-NET-1)
    (0xc01f_c400, 24), // 192.31.196.0/24 AS112-v4
    (0xc034_c100, 24), // 192.52.193.0/24 AMT
    (0xc058_6300, 24), // 192.88.99.0/24 deprecated 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc0af_3000, 24), // 192.175.48.0/24 direct delegation AS112
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation (TEST-NET-2)
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation (TEST-NET-3)
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, and 255.255.255.255 limited broadcast
];

/// Whether `ip` is an address of the public Internet where a webhook receiver may live: not in
/// any block of the IANA special-purpose registries for IPv4 and IPv6, nor multicast. An IPv6
/// address that embeds an IPv4 one (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`,
/// IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the
/// IPv4 address it reaches; only global unicast (`2000::/3`) is public otherwise.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let n = u32::from(ip);
            !SPECIAL_V4.iter().any(|&(block, bits)| n >> (32 - bits) == block >> (32 - bits))
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let n = u128::from(ip);
            let v4 = |low: u128| IpAddr::V4(std::net::Ipv4Addr::from((low & 0xffff_ffff) as u32));
            let within = |block: u128, bits: u32| n >> (128 - bits) == block >> (128 - bits);
            if within(0, 96) {
                // ::/96: the unspecified and loopback addresses, and the deprecated
                // IPv4-compatible form (::127.0.0.1 reaches 127.0.0.1 on some stacks).
                return n > 0xffff && is_public(v4(n));
            }
            if within(0xffff_0000_0000, 96) || within(0xffff_0000_0000_0000, 96) || within(0x0064_ff9b << 96, 96) {
                // IPv4-mapped, IPv4-translated, NAT64 well-known prefix.
                return is_public(v4(n));
            }
            if s[0] == 0x2002 {
                // 6to4: the IPv4 address in bits 16..48.
                return is_public(v4(n >> 80));
            }
            // Global unicast only, without the registry's special blocks inside it.
            within(0x2000 << 112, 3)
                && !within(0x2001 << 112, 23) // IETF protocol assignments (Teredo, benchmarking, ORCHID...)
                && !within(0x2001_0db8 << 96, 32) // documentation
                && !within(0x3fff << 112, 20) // documentation (RFC 9637)
                && !within(0x5f00 << 112, 16) // SRv6 SIDs
        }
    }
}

/// Resolves host names for webhooks, keeping only public addresses: a name that resolves into
/// the gateway's network is refused when connecting, whenever it was registered.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no public address (webhooks.allow_insecure_urls allows private ones)").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The `Ventanilla-Signature` value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", crate::digest::hex(&mac.finalize().into_bytes()))
}

/// Sends the status events of every registered webhook.
pub struct WebhookDispatcher {
    pub store: Arc<dyn Store>,
    /// This gateway's name in the webhooks' claims: gateways sharing a store send each
    /// webhook's events from one of them at a time.
    pub instance: String,
    pub client: reqwest::Client,
    pub retry: RetryPolicy,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `webhooks.allow_insecure_urls`, checked again before each POST.
    pub allow_insecure: bool,
}

impl WebhookDispatcher {
    /// The HTTP client webhooks are sent with: no redirects, bounded in time, and (unless
    /// `allow_insecure`) connecting to public addresses only.
    pub fn client(timeout: Duration, allow_insecure: bool) -> Result<reqwest::Client, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("ventanilla-webhooks/", env!("CARGO_PKG_VERSION")));
        let builder = if allow_insecure { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
        builder.build()
    }

    /// Runs until `shutdown` turns true; a POST in flight then is abandoned, and its event sent
    /// again at the next start (at least once).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        // Webhooks being served now: one task each, so a slow URL holds up only itself.
        let serving: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
        let turns = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                tasks.abort_all();
                return;
            }
            while tasks.try_join_next().is_some() {}
            match claim_due(&*this.store, &this.instance, now_millis()).await {
                Ok(due) => {
                    for target in due {
                        let fresh = serving.lock().map(|mut s| s.insert(target.id)).unwrap_or(false);
                        if !fresh {
                            continue;
                        }
                        let (this, serving, turns) = (this.clone(), serving.clone(), turns.clone());
                        tasks.spawn(async move {
                            if let Ok(_turn) = turns.acquire().await {
                                this.serve(&target).await;
                            }
                            if let Ok(mut s) = serving.lock() {
                                s.remove(&target.id);
                            }
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "webhooks: cannot read the store"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sends one webhook its next events, in order, stopping at the first refusal.
    async fn serve(&self, target: &WebhookTarget) {
        // Read before the events: every event up to it that is the participant's is in the
        // page below, so an empty page lets the cursor move past the others' events.
        let latest = match self.store.read_with(|l| l.latest_status_event()).await {
            Ok(latest) => latest,
            Err(e) => {
                tracing::error!(error = %e, "webhooks: cannot read status events");
                return;
            }
        };
        let (participant, cursor) = (target.participant.clone(), target.cursor);
        let events = match self.store.read_with(move |l| l.status_events_after(Some(&participant), cursor, PAGE)).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(error = %e, webhook = %target.id, "webhooks: cannot read status events");
                return;
            }
        };
        if events.is_empty() {
            if latest > target.cursor {
                if let Err(e) = delivered(&*self.store, target.id, latest).await {
                    tracing::error!(error = %e, webhook = %target.id, "webhooks: cannot move a cursor");
                }
            }
            return;
        }
        let mut attempts = target.attempts;
        for event in events {
            let outcome = self.post(target, event.position, event.body.as_bytes()).await;
            let recorded = match outcome {
                Ok(()) => {
                    self.metrics.webhook_sent(true);
                    delivered(&*self.store, target.id, event.position).await
                }
                Err(reason) => {
                    attempts += 1;
                    self.metrics.webhook_sent(false);
                    let at = now_millis();
                    let delay = self.retry.delay(attempts, jitter_seed(target.id.as_u128() as u64));
                    tracing::warn!(webhook = %target.id, participant = %target.participant, event = event.position, attempts,
                        retry_in_ms = delay.as_millis() as u64, reason = %reason, "webhook refused or unreachable; the same event will be sent again");
                    let next = at.saturating_add(delay.as_millis() as i64);
                    let id = target.id;
                    let failed = self.store.write_with(Vec::new(), move |l| {
                        let reason: String = reason.chars().take(500).collect();
                        l.webhook_failed(id, &reason, next)
                    });
                    if let Err(e) = failed.await {
                        tracing::error!(error = %e, webhook = %target.id, "webhooks: cannot record a failed attempt");
                    }
                    return;
                }
            };
            match recorded {
                Ok(true) => {}
                // Deleted meanwhile: nothing more.
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(error = %e, webhook = %target.id, "webhooks: cannot record a delivery; the event will be sent again");
                    return;
                }
            }
        }
    }

    /// POSTs one event; `Err` says why it did not get a 2xx (without the URL, which may carry
    /// a receiver's token).
    async fn post(&self, target: &WebhookTarget, event_id: i64, body: &[u8]) -> Result<(), String> {
        check_url(&target.url, self.allow_insecure).map_err(|e| format!("the URL is no longer allowed: {e}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let answer = self
            .client
            .post(target.url.as_str())
            .header("Content-Type", "application/json")
            .header("Ventanilla-Event-Id", event_id.to_string())
            .header("Ventanilla-Webhook-Id", target.id.to_string())
            .header("Ventanilla-Signature", signature(target.secret.expose(), now, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| crate::telemetry::error_chain(&e.without_url()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("the URL answered {}", answer.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_to_public_addresses_unless_allowed() {
        assert!(check_url("https://trader.example/hooks/ventanilla", false).is_ok());
        assert!(matches!(check_url("http://trader.example/x", false), Err(UrlRefused::NotHttps)));
        assert!(matches!(check_url("ftp://trader.example/x", true), Err(UrlRefused::NotHttps)));
        for private in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/x",
            "https://0.1.2.3/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:a9fe:a9fe]/latest",
            "https://localhost/x",
            "https://localhost./x",
            "https://api.localhost/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            // What a red team found accepted (issue 14): IPv4-compatible loopback, NAT64 and
            // 6to4 of the metadata address, an IPv4-translated loopback, site-local, the
            // benchmarking block and the former class E.
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::a9fe:a9fe]/latest",
            "https://[2002:a9fe:a9fe::]/latest",
            "https://[::ffff:0:7f00:1]/x",
            "https://[fec0::1]/x",
            "https://198.18.0.1/x",
            "https://240.0.0.1/x",
            // And the rest of the registries.
            "https://255.255.255.255/x",
            "https://224.0.0.1/x",
            "https://192.0.0.8/x",
            "https://192.0.2.1/x",
            "https://192.88.99.1/x",
            "https://198.51.100.7/x",
            "https://203.0.113.9/x",
            "https://172.31.255.255/x",
            "https://[::]/x",
            "https://[64:ff9b:1::a00:1]/x",
            "https://[64:ff9b::10.0.0.1]/x",
            "https://[100::1]/x",
            "https://[2001::1]/x",
            "https://[2001:db8::1]/x",
            "https://[3fff::1]/x",
            "https://[5f00::1]/x",
            "https://[ff02::1]/x",
            "https://[2002:7f00:1::]/x",
            "https://[::ffff:0:a00:1]/x",
        ] {
            assert!(matches!(check_url(private, false), Err(UrlRefused::PrivateAddress(_))), "{private}");
            assert!(check_url(private, true).is_ok(), "{private} with allow_insecure_urls");
        }
        assert!(matches!(check_url("https://user:pw@trader.example/x", false), Err(UrlRefused::Credentials)));
        assert!(matches!(check_url("not a url", false), Err(UrlRefused::NotAUrl(_))));
        assert!(matches!(check_url("https://\u{e1}\u{a5}/x", true), Err(UrlRefused::NotAUrl(_))));
        for public in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "198.20.0.1", "2001:4860:4860::8888", "2606:4700::1111",
            "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public} is public");
        }
    }

    /// HMAC-SHA256 by its definition (RFC 2104), from SHA-256 alone: an oracle independent
    /// of the `hmac` crate.
    fn hmac_by_definition(key: &[u8], message: &[u8]) -> String {
        use sha2::Digest;
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
        let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
        outer.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // RFC 4231, test case 2, checks the oracle itself.
        assert_eq!(
            hmac_by_definition(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = br#"{"state":"released"}"#;
        let sig = signature("s3cret", 1_700_000_000, body);
        assert_eq!(sig, format!("t=1700000000,v1={}", hmac_by_definition(b"s3cret", br#"1700000000.{"state":"released"}"#)));
        assert_ne!(signature("other", 1_700_000_000, body), sig);
        assert_ne!(signature("s3cret", 1_700_000_001, body), sig);
    }
}
