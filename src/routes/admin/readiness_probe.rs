//! The `clerk_reachable` check of `admin/readiness` (glue): one authenticated `GET /v1/jwks`
//! against Clerk's Backend API, with a timeout, remembered for a few seconds per isolate.

use serde_json::Value;

use crate::isolate::Isolate;
use crate::readiness::ClerkProbe;

/// How long one probe of Clerk's Backend API is reused (the dashboard polls the status).
const CLERK_PROBE_TTL_MS: u64 = 15_000;
/// How long the probe waits for Clerk.
const CLERK_PROBE_TIMEOUT_MS: u64 = 5_000;

thread_local! {
    static CLERK_PROBE: std::cell::RefCell<Option<(u64, ClerkProbe)>> =
        const { std::cell::RefCell::new(None) };
}

/// `GET {CLERK_API_URL}/v1/jwks` with the secret key: authenticated, and not rate-limited, so
/// the probe costs nothing from the Backend API budget.
pub(super) async fn probe_clerk(isolate: &Isolate, now_ms: u64) -> ClerkProbe {
    if let Some(probe) = CLERK_PROBE.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|(at, _)| now_ms < at + CLERK_PROBE_TTL_MS)
            .map(|(_, probe)| probe.clone())
    }) {
        return probe;
    }
    let Some(secret) = isolate.config.clerk_secret_key.as_deref() else {
        return ClerkProbe::NotConfigured;
    };
    let url = isolate.config.clerk_api_url.join("/v1/jwks");
    let probe = {
        let request = async {
            let headers = worker::Headers::new();
            headers
                .set("authorization", &format!("Bearer {secret}"))
                .map_err(|e| e.to_string())?;
            let request =
                crate::outbound::request(&url, worker::Method::Get, &headers, None, false)
                    .map_err(|e| e.to_string())?;
            let mut response = worker::Fetch::Request(request)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status_code();
            let body = response.text().await.unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        let timeout = worker::Delay::from(std::time::Duration::from_millis(CLERK_PROBE_TIMEOUT_MS));
        futures::pin_mut!(request);
        match futures::future::select(request, timeout).await {
            futures::future::Either::Left((Ok((status, body)), _)) => {
                let keys = serde_json::from_str::<Value>(&body)
                    .ok()
                    .is_some_and(|v| v["keys"].is_array());
                match (status, keys) {
                    (200, true) => ClerkProbe::Reachable { status },
                    (200, false) => ClerkProbe::Refused {
                        status,
                        reason: "the answer is not a key set".into(),
                    },
                    (401 | 403, _) => ClerkProbe::Refused {
                        status,
                        reason: "the secret key was refused".into(),
                    },
                    _ => ClerkProbe::Refused {
                        status,
                        reason: "unexpected status".into(),
                    },
                }
            }
            futures::future::Either::Left((Err(e), _)) => ClerkProbe::Unreachable(e),
            futures::future::Either::Right(_) => {
                ClerkProbe::Unreachable(format!("no answer within {CLERK_PROBE_TIMEOUT_MS} ms"))
            }
        }
    };
    CLERK_PROBE.with(|p| *p.borrow_mut() = Some((now_ms, probe.clone())));
    probe
}
