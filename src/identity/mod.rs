//! Who is making this request: a Clerk session, a NextAuth session, or nobody — and the
//! headers that tell the origin.

pub mod assertion;
pub mod cache;
pub mod clerk;
pub mod clerk_decoded;
pub mod database_session;
pub mod jwks;
pub mod legacy_id;
pub mod memo;
pub mod nextauth;
pub mod no_session;
pub mod resolver;
pub mod revocation;
pub mod webcrypto;

/// Where the request's identity came from (`x-auth-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Clerk,
    NextAuth,
    Anonymous,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Clerk => "clerk",
            Source::NextAuth => "nextauth",
            Source::Anonymous => "anonymous",
        }
    }
}

/// The identity headers of an anonymous request, packed as
/// [`crate::packed_headers::push`] packs them (what `Identity::anonymous().push_headers`
/// gives), so the common request builds none.
pub const ANONYMOUS_IDENTITY_HEADERS: &str = "x-auth-source\0anonymous";

/// The one identity forwarded to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub source: Source,
    /// The app's stable user id (`x-auth-user-id`): the legacy id when there is one.
    pub user_id: Option<String>,
    pub clerk_user_id: Option<String>,
    pub email: Option<String>,
    pub session_id: Option<String>,
    /// Clerk's session status (`sts`: `active`, or `pending` when forwarded), for Clerk sessions.
    pub session_status: Option<String>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            source: Source::Anonymous,
            user_id: None,
            clerk_user_id: None,
            email: None,
            session_id: None,
            session_status: None,
        }
    }

    /// The identity headers, in a fixed order; absent facts are absent headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(6);
        self.each_header(|name, value| out.push((name, value.to_string())));
        out
    }

    /// The same headers, appended to the packed list the forward takes (see
    /// [`crate::packed_headers::push`]), without a copy of each value.
    pub fn push_headers(&self, packed: &mut String) {
        self.each_header(|name, value| crate::packed_headers::push(packed, name, value));
    }

    fn each_header<'a>(&'a self, mut emit: impl FnMut(&'static str, &'a str)) {
        emit("x-auth-source", self.source.as_str());
        let optional = [
            ("x-auth-user-id", &self.user_id),
            ("x-auth-clerk-user-id", &self.clerk_user_id),
            ("x-auth-email", &self.email),
            ("x-auth-session-id", &self.session_id),
            ("x-auth-session-status", &self.session_status),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                emit(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_sends_only_the_source() {
        assert_eq!(
            Identity::anonymous().headers(),
            vec![("x-auth-source", "anonymous".to_string())]
        );
    }

    #[test]
    fn anonymous_headers_are_what_the_anonymous_identity_packs() {
        let mut packed = String::new();
        Identity::anonymous().push_headers(&mut packed);
        assert_eq!(packed, ANONYMOUS_IDENTITY_HEADERS);
    }

    #[test]
    fn packed_headers_are_the_same_headers() {
        let id = Identity {
            source: Source::Clerk,
            user_id: Some("legacy-1".into()),
            clerk_user_id: None,
            email: Some("a@example.com".into()),
            session_id: Some("sess_1".into()),
            session_status: Some("pending".into()),
        };
        let mut packed = String::new();
        id.push_headers(&mut packed);
        let expected: Vec<String> = id
            .headers()
            .into_iter()
            .flat_map(|(n, v)| [n.to_string(), v])
            .collect();
        assert_eq!(packed.split('\0').collect::<Vec<_>>(), expected);
    }

    #[test]
    fn known_facts_become_headers() {
        let id = Identity {
            source: Source::Clerk,
            user_id: Some("legacy-1".into()),
            clerk_user_id: Some("user_2abc".into()),
            email: Some("a@example.com".into()),
            session_id: Some("sess_1".into()),
            session_status: Some("active".into()),
        };
        let names: Vec<_> = id.headers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "x-auth-source",
                "x-auth-user-id",
                "x-auth-clerk-user-id",
                "x-auth-email",
                "x-auth-session-id",
                "x-auth-session-status"
            ]
        );
    }
}
