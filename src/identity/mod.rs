//! Who is making this request: a Clerk session, a NextAuth session, or nobody.

pub mod clerk;
pub mod nextauth;
