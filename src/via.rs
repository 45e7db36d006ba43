//! This worker's hop in the `Via` header (RFC 9110 §7.6.3), which is also its loop guard: a
//! request that already passed through it must not be forwarded again (in route mode on a
//! local runtime, the request's own URL leads back to the worker). Every request the worker
//! sends to the origin carries it: forwarded requests and database-session look-ups alike.
//!
//! A leaf module, so the identity layer can mark its own requests without depending on the
//! proxy.

/// This worker's name in `Via`.
pub const VIA_NAME: &str = "auth-bridge";

/// Whether a `Via` header value lists this worker.
pub fn via_lists_bridge(via: &str) -> bool {
    via.split(',')
        .any(|hop| hop.split_whitespace().nth(1) == Some(VIA_NAME))
}

/// The `Via` value to send on: the inbound one plus this hop.
pub fn via_with_bridge(inbound: Option<&str>) -> String {
    let mut via = String::new();
    push_via_with_bridge(&mut via, inbound);
    via
}

/// [`via_with_bridge`], appended to `out`.
pub fn push_via_with_bridge(out: &mut String, inbound: Option<&str>) {
    if let Some(via) = inbound.map(str::trim).filter(|v| !v.is_empty()) {
        out.push_str(via);
        out.push_str(", ");
    }
    out.push_str("1.1 ");
    out.push_str(VIA_NAME);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_marks_and_detects_this_hop() {
        assert_eq!(via_with_bridge(None), "1.1 auth-bridge");
        assert_eq!(via_with_bridge(Some("1.1 cdn")), "1.1 cdn, 1.1 auth-bridge");
        assert!(via_lists_bridge("1.1 cdn, 1.1 auth-bridge"));
        assert!(via_lists_bridge(&via_with_bridge(None)));
        assert!(!via_lists_bridge("1.1 cdn"));
        assert!(!via_lists_bridge("1.1 auth-bridge-other, 2 x"));
    }
}
