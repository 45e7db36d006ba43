//! Is it safe to switch to `clerk-only`? (`GET /__auth-bridge/admin/readiness`)
//!
//! Pure: takes figures the admin status already gathers (convergence, batch counts,
//! configuration problems) plus one probe of Clerk's Backend API, and returns one check per
//! condition, each with the figure it judged. `ready` is the AND of them. A figure that is
//! unknown (no traffic in the last day, KV unreadable) fails its check: readiness is a claim
//! that must be proven, not assumed.

use serde::Serialize;
use serde_json::{json, Value};

/// How Clerk's Backend API answered the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkProbe {
    /// Answered `200` with a key set.
    Reachable { status: u16 },
    /// Answered, but not as expected (status code and a short reason).
    Refused { status: u16, reason: String },
    /// Did not answer (network error, timeout).
    Unreachable(String),
    /// No `CLERK_SECRET_KEY`: nothing to probe with.
    NotConfigured,
}

/// The figures readiness is judged on.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The `last_day` window of the convergence report (`users.total`, `users.with_clerk`).
    pub last_day: Value,
    /// Whether the convergence report read every isolate's counts.
    pub convergence_complete: bool,
    pub min_clerk_share: f64,
    pub pending: u64,
    pub failed: u64,
    /// Configuration problems (never the readiness problem itself).
    pub problems: Vec<String>,
    pub clerk: ClerkProbe,
}

/// One condition, with the figure it judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub value: Value,
    pub detail: String,
}

/// The readiness answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Names of the failing checks.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

pub fn evaluate(f: &Figures) -> Readiness {
    let checks = vec![
        clerk_share(f),
        Check {
            name: "batch_pending",
            ok: f.pending == 0,
            value: json!(f.pending),
            detail: if f.pending == 0 {
                "no import record waits to be migrated".into()
            } else {
                format!("{} import records still wait to be migrated", f.pending)
            },
        },
        Check {
            name: "batch_failed",
            ok: f.failed == 0,
            value: json!(f.failed),
            detail: if f.failed == 0 {
                "no import record failed (or every failure was sent back with retry-failed)".into()
            } else {
                format!(
                    "{} import records failed: see admin/failures, fix them, then POST admin/retry-failed",
                    f.failed
                )
            },
        },
        Check {
            name: "configuration",
            ok: f.problems.is_empty(),
            value: json!(f.problems.len()),
            detail: if f.problems.is_empty() {
                "no configuration problems".into()
            } else {
                f.problems.join("; ")
            },
        },
        clerk_reachable(&f.clerk),
    ];
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn clerk_share(f: &Figures) -> Check {
    let users = &f.last_day["users"];
    let total = users["total"].as_u64().unwrap_or(0);
    let with_clerk = users["with_clerk"].as_u64().unwrap_or(0).min(total);
    let min = f.min_clerk_share;
    if total == 0 {
        return Check {
            name: "clerk_user_share",
            ok: false,
            value: Value::Null,
            detail: "no signed-in user seen in the last day: nothing shows the users have moved to Clerk yet".into(),
        };
    }
    let share = with_clerk as f64 / total as f64;
    let ok = share >= min && f.convergence_complete;
    let mut detail = format!(
        "{with_clerk} of {total} signed-in users of the last day have a Clerk identity ({:.1} %, needs ≥ {:.1} %)",
        share * 100.0,
        min * 100.0
    );
    if !f.convergence_complete {
        detail.push_str("; the convergence figures are partial (some counts could not be read)");
    }
    Check {
        name: "clerk_user_share",
        ok,
        value: json!((share * 10_000.0).floor() / 10_000.0),
        detail,
    }
}

fn clerk_reachable(probe: &ClerkProbe) -> Check {
    let (ok, value, detail) = match probe {
        ClerkProbe::Reachable { status } => (
            true,
            json!(status),
            "Clerk's Backend API answered with its key set".to_string(),
        ),
        ClerkProbe::Refused { status, reason } => (
            false,
            json!(status),
            format!("Clerk's Backend API answered {status}: {reason}"),
        ),
        ClerkProbe::Unreachable(why) => (
            false,
            Value::Null,
            format!("Clerk's Backend API did not answer: {why}"),
        ),
        ClerkProbe::NotConfigured => (
            false,
            Value::Null,
            "CLERK_SECRET_KEY is not set: Clerk cannot be reached".to_string(),
        ),
    };
    Check {
        name: "clerk_reachable",
        ok,
        value,
        detail,
    }
}

/// The line added to the status `problems` when `clerk-only` runs on a worker that is not ready.
pub fn clerk_only_problem(readiness: &Readiness) -> Option<String> {
    (!readiness.ready).then(|| {
        format!(
            "MIGRATION_PHASE: clerk-only while admin/readiness is not ready (failing: {})",
            readiness.failing().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(total: u64, with_clerk: u64) -> Figures {
        Figures {
            last_day: json!({"users": {"total": total, "with_clerk": with_clerk}}),
            convergence_complete: true,
            min_clerk_share: 0.99,
            pending: 0,
            failed: 0,
            problems: Vec::new(),
            clerk: ClerkProbe::Reachable { status: 200 },
        }
    }

    fn check<'a>(r: &'a Readiness, name: &str) -> &'a Check {
        r.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn ready_when_every_check_passes() {
        let r = evaluate(&figures(200, 198));
        assert!(r.ready, "{r:?}");
        let names: Vec<_> = r.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "clerk_user_share",
                "batch_pending",
                "batch_failed",
                "configuration",
                "clerk_reachable"
            ]
        );
        assert_eq!(check(&r, "clerk_user_share").value, json!(0.99));
        assert_eq!(clerk_only_problem(&r), None);
        let doc = r.to_json();
        assert_eq!(doc["ready"], true);
        for c in doc["checks"].as_array().unwrap() {
            for field in ["name", "ok", "value", "detail"] {
                assert!(c.get(field).is_some(), "{field} missing in {c}");
            }
        }
    }

    #[test]
    fn share_below_the_minimum_or_unknown_is_not_ready() {
        let r = evaluate(&figures(200, 197));
        assert!(!r.ready);
        assert!(!check(&r, "clerk_user_share").ok);
        assert_eq!(r.failing(), ["clerk_user_share"]);
        let r = evaluate(&figures(0, 0));
        assert!(!r.ready);
        assert_eq!(check(&r, "clerk_user_share").value, Value::Null);
        let mut f = figures(10, 10);
        f.convergence_complete = false;
        assert!(!evaluate(&f).ready);
        let mut f = figures(100, 90);
        f.min_clerk_share = 0.9;
        assert!(evaluate(&f).ready);
        // A report that says more users with Clerk than users at all is clamped, not > 100 %.
        assert_eq!(
            check(&evaluate(&figures(5, 9)), "clerk_user_share").value,
            json!(1.0)
        );
    }

    #[test]
    fn each_other_condition_alone_blocks_readiness() {
        let mut f = figures(10, 10);
        f.pending = 3;
        assert_eq!(evaluate(&f).failing(), ["batch_pending"]);
        let mut f = figures(10, 10);
        f.failed = 1;
        assert_eq!(evaluate(&f).failing(), ["batch_failed"]);
        let mut f = figures(10, 10);
        f.problems = vec!["CLERK_JWT_KEY: bad".into()];
        let r = evaluate(&f);
        assert_eq!(r.failing(), ["configuration"]);
        assert_eq!(check(&r, "configuration").detail, "CLERK_JWT_KEY: bad");
        for probe in [
            ClerkProbe::Refused {
                status: 401,
                reason: "x".into(),
            },
            ClerkProbe::Unreachable("timeout".into()),
            ClerkProbe::NotConfigured,
        ] {
            let mut f = figures(10, 10);
            f.clerk = probe;
            let r = evaluate(&f);
            assert_eq!(r.failing(), ["clerk_reachable"]);
            assert!(clerk_only_problem(&r).unwrap().contains("clerk_reachable"));
        }
    }
}
