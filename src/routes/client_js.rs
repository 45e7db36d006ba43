//! `GET /__auth-bridge/client.js`: the browser script of the trickle migration
//! (`src/client.js`, embedded at build time). `no-store` like every bridge answer: a new
//! release takes effect on the next page load.

/// The script's source.
pub const CLIENT_JS: &str = include_str!("../client.js");

pub fn handle() -> web_sys::Response {
    let response = super::typed(200, "text/javascript; charset=utf-8", CLIENT_JS);
    let _ = response.headers().set("x-content-type-options", "nosniff");
    response
}

#[cfg(test)]
mod tests {
    use super::CLIENT_JS;

    #[test]
    fn script_uses_the_endpoint_and_the_ticket_strategy() {
        assert!(CLIENT_JS.contains("'/__auth-bridge/sign-in-token'"));
        assert!(CLIENT_JS.contains("strategy: 'ticket'"));
        assert!(CLIENT_JS.contains("credentials: 'same-origin'"));
        assert!(CLIENT_JS.contains("setActive"));
        assert!(CLIENT_JS.len() < 8 * 1024, "keep the script small");
    }
}
