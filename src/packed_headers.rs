//! The headers a forward sets, packed as one string for `src/proxy.js`: `name NUL value NUL
//! name NUL value ...`. One string crosses from wasm to JS in one copy, where a list of pairs
//! would cost a crossing per header. A leaf: the identity packs its headers here, and the
//! forward ([`crate::proxy::forward`]) hands the string over as it is.

/// Appends one header to the packed list. A value holding NUL cannot be a header value, and
/// must never be split into other headers: each NUL is packed as a line feed. Inside a value
/// the runtime refuses it (a `502`, as any header the runtime refuses); at either end it is
/// trimmed as header whitespace. Either way no header is split off.
pub fn push(packed: &mut String, name: &str, value: &str) {
    if !packed.is_empty() {
        packed.push('\0');
    }
    packed.push_str(name);
    packed.push('\0');
    if value.contains('\0') {
        packed.push_str(&value.replace('\0', "\n"));
    } else {
        packed.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::push;

    #[test]
    fn identity_headers_pack_as_name_value_pairs() {
        let mut packed = String::new();
        push(&mut packed, "x-auth-source", "clerk");
        push(&mut packed, "x-auth-email", "");
        assert_eq!(packed, "x-auth-source\0clerk\0x-auth-email\0");
        // A value with NUL never becomes another header (the runtime refuses a line feed).
        let mut packed = String::new();
        push(&mut packed, "x-auth-email", "a@x\0x-auth-user-id\0victim");
        push(&mut packed, "x-auth-user-id", "ada");
        let parts: Vec<&str> = packed.split('\0').collect();
        assert_eq!(
            parts,
            [
                "x-auth-email",
                "a@x\nx-auth-user-id\nvictim",
                "x-auth-user-id",
                "ada"
            ]
        );
    }
}
