//! The read-only HTML dashboard (`GET /__auth-bridge/admin`): the status document rendered
//! server-side as progress bars, no script. Every value is HTML-escaped.

use serde_json::Value;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn count(doc: &Value, key: &str) -> u64 {
    doc["counts"][key].as_u64().unwrap_or(0)
}

fn bar(label: &str, n: u64, total: u64, class: &str) -> String {
    let pct = if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    };
    format!(
        "<div class=row><span class=label>{label}</span>\
         <div class=track><div class=\"fill {class}\" style=\"width:{pct:.1}%\"></div></div>\
         <span class=n>{n} ({pct:.1}%)</span></div>\n"
    )
}

/// Renders the status document.
pub fn render(doc: &Value) -> String {
    let accepted = count(doc, "accepted");
    let mut bars = String::new();
    for (key, class) in [
        ("migrated", "ok"),
        ("skipped", "skip"),
        ("failed", "bad"),
        ("pending", "wait"),
    ] {
        bars.push_str(&bar(key, count(doc, key), accepted, class));
    }
    if let Some(d) = doc.get("dry_run").filter(|d| d.is_object()) {
        bars.push_str("<h2>Dry run (observe)</h2>\n");
        for key in [
            "would_create",
            "would_link",
            "already_migrated",
            "would_skip",
            "would_fail",
            "pending",
        ] {
            bars.push_str(&bar(key, d[key].as_u64().unwrap_or(0), accepted, "wait"));
        }
    }
    let text = |v: &Value| match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    };
    let problems: String = doc["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("<li>{}</li>", text(p)))
                .collect::<String>()
        })
        .unwrap_or_default();
    let problems = if problems.is_empty() {
        "<p>No configuration problems.</p>".to_owned()
    } else {
        format!("<ul class=problems>{problems}</ul>")
    };
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width\"><title>auth-bridge migration</title>\
<style>body{{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}\
.row{{display:flex;align-items:center;gap:.6rem;margin:.35rem 0}}.label{{width:9rem}}\
.track{{flex:1;height:.9rem;background:#eee;border-radius:.45rem;overflow:hidden}}\
.fill{{height:100%}}.ok{{background:#2a7}}.skip{{background:#99a}}.bad{{background:#d44}}.wait{{background:#48c}}\
.n{{width:9rem;text-align:right;font-variant-numeric:tabular-nums}}dt{{font-weight:600}}\
dl{{display:grid;grid-template-columns:9rem 1fr;gap:.2rem .6rem}}.problems{{color:#b22}}</style></head>\n\
<body><h1>auth-bridge migration</h1>\n<dl><dt>phase</dt><dd>{phase}</dd>\
<dt>accepted</dt><dd>{accepted}</dd><dt>rate</dt><dd>{limit} ({per_min} records/min)</dd>\
<dt>paused</dt><dd>{paused}</dd><dt>eta</dt><dd>{eta}</dd><dt>counted at</dt><dd>{at}</dd></dl>\n\
{bars}<h2>Problems</h2>\n{problems}\n</body></html>\n",
        phase = text(&doc["phase"]),
        limit = text(&doc["rate"]["limit"]),
        per_min = text(&doc["rate"]["batch_per_minute"]),
        paused = text(&doc["paused"]),
        eta = text(&doc["eta_at"]),
        at = text(&doc["counted_at"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_bars_and_escapes_problems() {
        let doc = json!({
            "phase": "migrate",
            "counts": {"accepted": 4, "migrated": 2, "skipped": 0, "failed": 1, "pending": 1},
            "rate": {"limit": "100/10s", "batch_per_minute": 160},
            "paused": false, "eta_at": null, "counted_at": "2026-01-01T00:00:00.000Z",
            "problems": ["CLERK_JWT_KEY: <bad>"],
        });
        let html = render(&doc);
        assert!(html.contains("width:50.0%"), "migrated is half");
        assert!(html.contains("width:25.0%"));
        assert!(html.contains("CLERK_JWT_KEY: &lt;bad&gt;"));
        assert!(!html.contains("<bad>"));
    }
}
