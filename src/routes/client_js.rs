//! `GET /__auth-bridge/client.js`: the browser script of the trickle migration.

pub fn handle() -> web_sys::Response {
    super::plain(404, "Not Found\n")
}
