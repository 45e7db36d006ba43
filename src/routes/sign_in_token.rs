//! `POST /__auth-bridge/sign-in-token`: signs a NextAuth user into Clerk (trickle migration).

use worker::{Env, Request};

use crate::identity::resolver::Resolution;
use crate::isolate::Isolate;

pub async fn handle(
    _req: &Request,
    _env: &Env,
    _isolate: &Isolate,
    _resolution: &Resolution,
) -> web_sys::Response {
    super::plain(404, "Not Found\n")
}
