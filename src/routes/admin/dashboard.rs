//! The read-only HTML dashboard (`GET /__auth-bridge/admin`): the status document and the latest
//! failures rendered server-side — progress bars, the Clerk calls against the rate limit, the
//! share of users on Clerk hour by hour over the last day as an inline SVG chart, failures by
//! Clerk's error code. No script, no external asset (the answer's CSP allows none), and every
//! value that comes from the document is HTML-escaped.
//!
//! Fields of the status document this page does not know are still shown, under "Other
//! figures", so a figure added to `admin/status` is visible here without a change.

use std::fmt::Write as _;

use serde_json::Value;

/// The `Content-Security-Policy` of the page: inline styles and nothing else.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'";

/// Top-level fields of the status document rendered in their own sections.
const KNOWN_FIELDS: &[&str] = &[
    "phase",
    "readiness",
    "counts",
    "accepted",
    "pending",
    "migrated",
    "skipped",
    "failed",
    "rate",
    "eta",
    "eta_at",
    "paused",
    "pause",
    "scheduled_until",
    "counted_at",
    "problems",
    "dry_run",
    "convergence",
];

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text (`—` for null or absent).
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

fn count(doc: &Value, key: &str) -> u64 {
    doc["counts"][key].as_u64().unwrap_or(0)
}

fn percent(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn bar(label: &str, n: u64, total: u64, class: &str) -> String {
    let pct = percent(n, total);
    format!(
        "<div class=row><span class=label>{label}</span>\
         <div class=track><div class=\"fill {class}\" style=\"width:{pct:.1}%\"></div></div>\
         <span class=n>{n} ({pct:.1}%)</span></div>\n",
        label = escape(label),
    )
}

/// The calls a rate-limit string allows per window (`"1000/10s"` → 1000).
fn limit_calls(limit: &str) -> Option<u64> {
    limit.split('/').next()?.trim().parse().ok()
}

/// Shares in `[0, 1]` (or null) as a percentage with one decimal.
fn share_text(v: &Value) -> String {
    v.as_f64()
        .map(|s| format!("{:.1}%", s * 100.0))
        .unwrap_or_else(|| "—".to_owned())
}

fn progress(doc: &Value) -> String {
    let accepted = count(doc, "accepted");
    let mut out = String::from("<h2>Progress</h2>\n");
    if accepted == 0 {
        out.push_str("<p class=muted>No import yet: upload users with <code>scripts/import-users</code>.</p>\n");
    }
    // One stacked bar of the whole import, then one row per state.
    out.push_str("<div class=stack>");
    for (key, class) in [
        ("migrated", "ok"),
        ("skipped", "skip"),
        ("failed", "bad"),
        ("pending", "wait"),
    ] {
        let pct = percent(count(doc, key), accepted);
        let _ = write!(
            out,
            "<div class=\"fill {class}\" style=\"width:{pct:.2}%\" title=\"{key}\"></div>"
        );
    }
    out.push_str("</div>\n");
    for (key, class) in [
        ("migrated", "ok"),
        ("skipped", "skip"),
        ("failed", "bad"),
        ("pending", "wait"),
    ] {
        out.push_str(&bar(key, count(doc, key), accepted, class));
    }
    if let Some(d) = doc.get("dry_run").filter(|d| d.is_object()) {
        out.push_str("<h3>Dry run (observe: nothing is written to Clerk)</h3>\n");
        for key in [
            "would_create",
            "would_link",
            "already_migrated",
            "would_skip",
            "would_fail",
            "pending",
        ] {
            out.push_str(&bar(key, d[key].as_u64().unwrap_or(0), accepted, "wait"));
        }
    }
    out
}

/// The Clerk calls of the current window against the limit: the trickle's recent calls and the
/// batch's budget, then every figure of `rate`.
fn rate(doc: &Value) -> String {
    let rate = &doc["rate"];
    let mut out = String::from("<h2>Rate against Clerk's limit</h2>\n");
    if let Some(limit) = rate["limit"].as_str().and_then(limit_calls) {
        let trickle = rate["trickle_recent"].as_u64().unwrap_or(0);
        let budget = rate["budget_per_window"].as_u64().unwrap_or(0);
        let batch = budget.saturating_sub(trickle);
        let _ = write!(
            out,
            "<div class=stack title=\"calls per window\">\
             <div class=\"fill trickle\" style=\"width:{t:.2}%\"></div>\
             <div class=\"fill wait\" style=\"width:{b:.2}%\"></div></div>\n\
             <p class=legend><span class=\"dot trickle\"></span>trickle, last window: {trickle} \
             <span class=\"dot wait\"></span>batch budget: {batch} \
             <span class=\"dot free\"></span>headroom: {free} — of {limit} calls per window ({limit_text})</p>\n",
            t = percent(trickle.min(limit), limit),
            b = percent(batch.min(limit.saturating_sub(trickle)), limit),
            free = limit.saturating_sub(trickle + batch),
            limit_text = text(&rate["limit"]),
        );
    }
    out.push_str("<dl>");
    if let Some(fields) = rate.as_object() {
        for (key, value) in fields {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(key), text(value));
        }
    }
    let _ = write!(
        out,
        "<dt>ETA</dt><dd>{}</dd><dt>paused</dt><dd>{}</dd>",
        text(&doc["eta_at"]),
        paused_text(doc)
    );
    out.push_str("</dl>\n");
    out
}

fn paused_text(doc: &Value) -> String {
    if doc["pause"]["admin"].as_bool() == Some(true) {
        "yes, by the admin (<code>POST admin/resume</code> to go on)".to_owned()
    } else if let Some(until) = doc["pause"]["rate_limited_until"].as_str() {
        format!("rate-limited by Clerk until {}", escape(until))
    } else if doc["paused"].as_bool() == Some(true) {
        "yes".to_owned()
    } else {
        "no".to_owned()
    }
}

/// The share of users with a Clerk session, hour by hour over the last day: one bar per hour.
fn convergence_chart(series: &[Value]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let n = series.len().max(1) as f64;
    let slot = W / n;
    let mut svg = format!(
        "<svg class=chart viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\" role=img \
         aria-label=\"share of signed-in users with a Clerk session, per hour, last 24 hours\">",
        h = H + 18.0
    );
    for pct in [0.0, 50.0, 100.0] {
        let y = H - H * pct / 100.0;
        let _ = write!(
            svg,
            "<line x1=0 x2=\"{W}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=grid />\
             <text x=2 y=\"{ty:.1}\" class=axis>{pct:.0}%</text>",
            ty = (y - 2.0).max(9.0)
        );
    }
    for (i, hour) in series.iter().enumerate() {
        let x = i as f64 * slot;
        let requests = hour["signed_in_requests"].as_u64().unwrap_or(0);
        let title = format!(
            "{} hours ago: {} of users on Clerk, {} signed-in requests",
            series.len() - 1 - i,
            share_text(&hour["clerk_user_share"]),
            requests
        );
        match hour["clerk_user_share"].as_f64() {
            Some(share) => {
                let h = (H * share.clamp(0.0, 1.0)).max(1.0);
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" class=bar>\
                     <title>{t}</title></rect>",
                    y = H - h,
                    w = slot - 2.0,
                    t = escape(&title)
                );
            }
            None => {
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=2 class=none>\
                     <title>{t}</title></rect>",
                    y = H - 2.0,
                    w = slot - 2.0,
                    t = escape(&title)
                );
            }
        }
    }
    let _ = write!(
        svg,
        "<text x=0 y=\"{y}\" class=axis>24 h ago</text>\
         <text x=\"{W}\" y=\"{y}\" class=axis text-anchor=end>now</text></svg>",
        y = H + 14.0
    );
    svg
}

fn convergence(doc: &Value) -> String {
    let c = &doc["convergence"];
    let mut out = String::from("<h2>Convergence</h2>\n");
    if !c.is_object() {
        out.push_str("<p class=muted>No figures yet.</p>\n");
        return out;
    }
    out.push_str("<table><tr><th></th><th>users on Clerk</th><th>users</th><th>still NextAuth only</th><th>signed-in requests on Clerk</th></tr>");
    for (label, key) in [("last hour", "last_hour"), ("last day", "last_day")] {
        let w = &c[key];
        let _ = write!(
            out,
            "<tr><th>{label}</th><td class=big>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            share_text(&w["clerk_user_share"]),
            text(&w["users"]["total"]),
            text(&w["users"]["without_clerk"]),
            share_text(&w["clerk_request_share"]),
        );
    }
    out.push_str("</table>\n");
    if let Some(series) = c["last_day_hourly"].as_array().filter(|s| !s.is_empty()) {
        out.push_str("<h3>Users on Clerk, hour by hour</h3>\n");
        out.push_str(&convergence_chart(series));
        out.push('\n');
    }
    if c["complete"].as_bool() == Some(false) {
        out.push_str("<p class=muted>Partial: not every isolate's counts could be read.</p>\n");
    }
    out
}

/// Failures grouped by Clerk's error code, then the latest ones.
fn failures(doc: &Value, failures: &[Value], truncated: bool) -> String {
    let total = count(doc, "failed");
    let mut out = format!("<h2>Failures ({total})</h2>\n");
    if failures.is_empty() {
        out.push_str("<p class=muted>None.</p>\n");
        return out;
    }
    // A few codes among at most a few dozen failures: a list, not a map.
    let mut codes: Vec<(&str, u64)> = Vec::new();
    for f in failures {
        let code = f["code"].as_str().unwrap_or("(no code)");
        match codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => codes.push((code, 1)),
        }
    }
    crate::sort::sort_by(&mut codes, |a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let _ = write!(
        out,
        "<p class=muted>By error code (Clerk's, or the migration's own){}:</p>\n<table class=codes>",
        if truncated {
            format!(", among the first {} read", failures.len())
        } else {
            String::new()
        }
    );
    for (code, n) in &codes {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=n>{n}</td></tr>",
            escape(code)
        );
    }
    out.push_str("</table>\n<table class=failures><tr><th>legacy id</th><th>code</th><th>message</th><th>failed at</th></tr>");
    for f in failures {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            text(&f["id"]),
            text(&f["code"]),
            text(&f["message"]),
            text(&f["failed_at"]),
        );
    }
    out.push_str("</table>\n<p class=muted>All of them: <code>GET /__auth-bridge/admin/failures</code> (NDJSON); <code>POST …/admin/retry-failed</code> puts them back.</p>\n");
    out
}

/// A value of "Other figures": an object as a list of its fields (one level), anything else as
/// text.
fn figure(value: &Value) -> String {
    let Some(fields) = value.as_object() else {
        return text(value);
    };
    let mut out = String::from("<dl class=nested>");
    for (key, value) in fields {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(key), text(value));
    }
    out.push_str("</dl>");
    out
}

/// Scalars and small objects of the document that no section above shows.
fn other_figures(doc: &Value) -> String {
    let Some(fields) = doc.as_object() else {
        return String::new();
    };
    let mut rows = String::new();
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str()))
    {
        let _ = write!(rows, "<dt>{}</dt><dd>{}</dd>", escape(key), figure(value));
    }
    if rows.is_empty() {
        String::new()
    } else {
        format!("<h2>Other figures</h2>\n<dl>{rows}</dl>\n")
    }
}

/// `admin/readiness`: ready for `clerk-only`, or the failing checks with their details.
fn readiness(doc: &Value) -> String {
    let Some(ready) = doc["readiness"]["ready"].as_bool() else {
        return String::new();
    };
    if ready {
        return "<p>Ready for <code>clerk-only</code>: every readiness check passes.</p>\n"
            .to_owned();
    }
    let failing: String = doc["readiness"]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "<li><code>{}</code>: {}</li>",
                text(&c["name"]),
                text(&c["detail"])
            )
        })
        .collect();
    format!("<p>Not ready for <code>clerk-only</code>:</p>\n<ul class=problems>{failing}</ul>\n")
}

fn problems(doc: &Value) -> String {
    let items: String = doc["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("<li>{}</li>", text(p)))
                .collect::<String>()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "<h2>Configuration</h2>\n<p class=muted>No configuration problems.</p>\n".to_owned()
    } else {
        format!("<h2>Configuration problems</h2>\n<ul class=problems>{items}</ul>\n")
    }
}

const STYLE: &str = "body{font:15px system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{margin-bottom:.2rem}h2{margin-top:1.8rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem}\
.sub{color:#666;margin-top:0}.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;background:#e6eefc;color:#234;font-weight:600}\
.row{display:flex;align-items:center;gap:.6rem;margin:.35rem 0}.label{width:9rem}\
.track,.stack{flex:1;height:.9rem;background:#eee;border-radius:.45rem;overflow:hidden;display:flex}\
.stack{height:1.4rem;margin:.6rem 0}.fill{height:100%}\
.ok{background:#2a7}.skip{background:#99a}.bad{background:#d44}.wait{background:#48c}.trickle{background:#e93}.free{background:#eee;border:1px solid #ccc}\
.n{width:9rem;text-align:right;font-variant-numeric:tabular-nums}\
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:.35rem;margin:0 .3rem 0 .8rem;vertical-align:middle}\
dt{font-weight:600}dl{display:grid;grid-template-columns:14rem 1fr;gap:.2rem .6rem}dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}\
dl.nested{margin:0;grid-template-columns:max-content 1fr}dl.nested dt{font-weight:400;color:#666}\
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #eee}\
td.big{font-size:1.3rem;font-weight:600}.failures td{font-size:.9rem;vertical-align:top}\
.failures td:first-child{white-space:nowrap}.problems{color:#b22}.muted{color:#666}\
.chart .bar{fill:#2a7}.chart .none{fill:#ddd}.chart .grid{stroke:#ddd}.chart .axis{font-size:10px;fill:#666}";

/// Renders the page from the status document and the latest failures (`admin/failures` lines).
pub fn render(doc: &Value, latest_failures: &[Value], failures_truncated: bool) -> String {
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width\"><title>auth-bridge migration</title>\
<style>{STYLE}</style></head>\n\
<body><h1>auth-bridge migration</h1>\n\
<p class=sub>phase <span class=badge>{phase}</span> · counted at {at} · accepted {accepted}</p>\n\
{readiness}{progress}{rate}{convergence}{failures}{other}{problems}</body></html>\n",
        phase = text(&doc["phase"]),
        at = text(&doc["counted_at"]),
        accepted = count(doc, "accepted"),
        progress = progress(doc),
        rate = rate(doc),
        convergence = convergence(doc),
        failures = failures(doc, latest_failures, failures_truncated),
        other = other_figures(doc),
        problems = problems(doc),
        readiness = readiness(doc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "phase": "migrate",
            "counts": {"accepted": 4, "migrated": 2, "skipped": 0, "failed": 1, "pending": 1},
            "rate": {"limit": "100/10s", "budget_per_window": 80, "batch_per_minute": 160, "trickle_recent": 20},
            "paused": false, "pause": {"admin": false, "rate_limited_until": null},
            "eta_at": null, "counted_at": "2026-01-01T00:00:00.000Z",
            "problems": ["CLERK_JWT_KEY: <bad>"],
            "convergence": {
                "last_hour": {"clerk_user_share": 0.25, "clerk_request_share": 0.5, "users": {"total": 4, "without_clerk": 3}},
                "last_day": {"clerk_user_share": null, "users": {"total": 0, "without_clerk": 0}},
                "last_day_hourly": [
                    {"hour": 0, "signed_in_requests": 0, "clerk_user_share": null},
                    {"hour": 3600, "signed_in_requests": 8, "clerk_user_share": 0.5},
                ],
                "complete": true,
            },
            "users_per_sec": 2.5,
            "calls": {"per_user": 3, "recent": [1, 2]},
        })
    }

    #[test]
    fn renders_bars_rate_chart_and_failures() {
        let failures = vec![
            json!({"id": "u-1", "code": "form_password_pwned", "message": "pwned", "failed_at": "t"}),
            json!({"id": "u-2", "code": "form_password_pwned", "message": "pwned", "failed_at": "t"}),
            json!({"id": "u-3", "code": "form_identifier_exists", "message": "taken", "failed_at": "t"}),
        ];
        let html = render(&doc(), &failures, false);
        assert!(html.contains("width:50.0%"), "migrated is half");
        assert!(html.contains("width:25.0%"));
        // Trickle 20 and batch 60 of 100 calls.
        assert!(html.contains("trickle\" style=\"width:20.00%"));
        assert!(html.contains("wait\" style=\"width:60.00%"));
        assert!(html.contains("headroom: 20"));
        assert!(html.contains("<td class=big>25.0%</td>"));
        // Two hours in the chart: one without traffic, one at half height (60 of 120).
        assert_eq!(html.matches("<rect").count(), 2);
        assert!(html.contains("height=\"60.0\" class=bar"));
        // Codes counted, most frequent first.
        let pwned = html
            .find("<code>form_password_pwned</code></td><td class=n>2")
            .unwrap();
        let exists = html
            .find("<code>form_identifier_exists</code></td><td class=n>1")
            .unwrap();
        assert!(pwned < exists);
        // A figure the page does not know is still shown, an object field by field.
        assert!(html.contains("<dt>users_per_sec</dt><dd>2.5</dd>"));
        assert!(html.contains(
            "<dt>calls</dt><dd><dl class=nested><dt>per_user</dt><dd>3</dd><dt>recent</dt><dd>[1,2]</dd></dl></dd>"
        ));
    }

    #[test]
    fn escapes_everything_from_the_document() {
        let mut d = doc();
        d["phase"] = json!("<script>alert(1)</script>");
        d["rate"]["limit"] = json!("\"><img src=x>");
        d["extra<b>"] = json!("'quoted'");
        let failures =
            vec![json!({"id": "<i>", "code": "<c>", "message": "a&b", "failed_at": "\""})];
        let html = render(&d, &failures, true);
        assert!(html.contains("CLERK_JWT_KEY: &lt;bad&gt;"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x&gt;"));
        assert!(html.contains("<dt>extra&lt;b&gt;</dt><dd>&#39;quoted&#39;</dd>"));
        assert!(html.contains("<td>&lt;i&gt;</td><td><code>&lt;c&gt;</code></td><td>a&amp;b</td>"));
        for raw in ["<bad>", "<script>", "<img", "<i>", "<c>", "<b>"] {
            assert!(!html.contains(raw), "{raw} left unescaped");
        }
        assert!(html.contains("among the first 1 read"));
    }

    #[test]
    fn renders_readiness_with_the_failing_checks() {
        let mut d = doc();
        d["readiness"] = json!({"ready": false, "checks": [
            {"name": "batch_pending", "ok": false, "value": 3, "detail": "3 <records> wait"},
            {"name": "clerk_reachable", "ok": true, "value": 200, "detail": "Clerk answered"},
        ]});
        let html = render(&d, &[], false);
        assert!(
            html.contains("<li><code>batch_pending</code>: 3 &lt;records&gt; wait</li>"),
            "{html}"
        );
        assert!(!html.contains("Clerk answered"));
        assert!(!html.contains("<dt>readiness</dt>"));
        d["readiness"] = json!({"ready": true, "checks": []});
        assert!(render(&d, &[], false).contains("Ready for <code>clerk-only</code>"));
    }

    #[test]
    fn empty_status_renders() {
        let html = render(&json!({"phase": "observe", "counts": {}}), &[], false);
        assert!(html.contains("No import yet"));
        assert!(html.contains("No figures yet"));
        assert!(html.contains("<h2>Failures (0)</h2>"));
    }
}
