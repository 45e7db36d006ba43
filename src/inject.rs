//! Optional injection of the trickle script (`INJECT_CLIENT_SCRIPT=true`): HTML pages served to
//! a NextAuth-only identity during `migrate` get
//! `<script src="/__auth-bridge/client.js" defer></script>` before `</head>` (or, without a
//! head, before `</body>`), so apps need no code change to sign their users into Clerk.
//!
//! The body is rewritten as it streams ([`ScriptInjector`], a small HTML tokenizer): no
//! buffering of the page, and the tag lands where the markup says the head ends, not inside a
//! comment or a script string. `Content-Length` is dropped (the body grows); compressed
//! bodies, non-HTML, partial and bodiless answers pass through untouched.

use futures::stream::{self, StreamExt};

use crate::config::Config;
use crate::identity::Source;

/// The tag injected.
pub const SCRIPT_TAG: &str = r#"<script src="/__auth-bridge/client.js" defer></script>"#;

/// The facts of one exchange that decide whether to inject.
pub struct PageFacts<'a> {
    pub method: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
}

/// Whether this response should carry the script. Only NextAuth-only identities need it (a
/// Clerk session is already migrated, anonymous visitors have nobody to migrate), and only
/// `migrate` mints tokens.
pub fn should_inject(config: &Config, source: Source, page: &PageFacts<'_>) -> bool {
    may_inject(config, source)
        && page.method.eq_ignore_ascii_case("GET")
        && (200..300).contains(&page.status)
        && !(204..=206).contains(&page.status)
        && page.content_type.is_some_and(is_html)
        && page
            .content_encoding
            .is_none_or(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"))
}

/// The part of [`should_inject`] known before the origin answers: when it is false, the
/// origin's response is passed on without being looked at.
pub fn may_inject(config: &Config, source: Source) -> bool {
    config.inject_client_script && config.phase.writes_to_clerk() && source == Source::NextAuth
}

fn is_html(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
}

/// Elements whose content is text up to their own end tag (a `</head>` inside a script
/// string is not the end of the head).
const RAW_TEXT: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"noscript",
    b"plaintext",
];
/// Longer tag names are not ours; their bytes are not held back.
const MAX_NAME: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After `<`.
    TagOpen,
    /// After `</`.
    EndTagOpen,
    /// Reading a tag name.
    TagName {
        end: bool,
    },
    /// After a tag's name, up to its `>`; `quote` inside a quoted attribute value.
    InTag {
        quote: Option<u8>,
        raw: bool,
    },
    /// After `<!`: two dashes open a comment, anything else is a bogus comment.
    MarkupOpen {
        dashes: u8,
    },
    Comment {
        dashes: u8,
    },
    Bogus,
    /// Inside a raw-text element, `matched` bytes of `</name` seen.
    RawText {
        matched: usize,
    },
    /// The tag is placed: the rest passes through.
    Done,
}

/// Adds [`SCRIPT_TAG`] to an HTML byte stream, chunk by chunk, just before the first `</head>`
/// or `</body>` end tag found in markup (not in comments, attribute values or script text).
///
/// A small tokenizer rather than a full HTML rewriter: it needs to recognise only tags,
/// comments and raw-text elements, and it keeps the worker's wasm small (a general rewriter
/// such as `lol_html` adds about 200 KB gzipped). Bytes are passed on as they arrive; only an
/// end tag's first few bytes are held until its name is known. After the tag is placed, the
/// rest is copied without looking.
pub struct ScriptInjector {
    state: State,
    name: Vec<u8>,
    raw_name: Vec<u8>,
    /// Bytes of an end tag held back until its name is known.
    held: Vec<u8>,
}

impl Default for ScriptInjector {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptInjector {
    pub fn new() -> ScriptInjector {
        ScriptInjector {
            state: State::Data,
            name: Vec::with_capacity(MAX_NAME),
            raw_name: Vec::new(),
            held: Vec::with_capacity(MAX_NAME + 2),
        }
    }

    /// Whether the tag has been placed.
    pub fn placed(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds one chunk; returns the bytes ready to send.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + SCRIPT_TAG.len());
        for (i, &b) in chunk.iter().enumerate() {
            if self.state == State::Done {
                out.extend_from_slice(&chunk[i..]);
                break;
            }
            self.step(b, &mut out);
        }
        out
    }

    /// Ends the document; returns what was held back.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    fn release(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        let is_name_end = |b: u8| b.is_ascii_whitespace() || b == b'/' || b == b'>';
        match self.state {
            State::Data => {
                if b == b'<' {
                    self.held.push(b);
                    self.state = State::TagOpen;
                } else {
                    out.push(b);
                }
            }
            State::TagOpen => match b {
                b'/' => {
                    self.held.push(b);
                    self.state = State::EndTagOpen;
                }
                b'!' | b'?' => {
                    self.release(out);
                    out.push(b);
                    self.state = if b == b'!' {
                        State::MarkupOpen { dashes: 0 }
                    } else {
                        State::Bogus
                    };
                }
                _ if b.is_ascii_alphabetic() => {
                    self.release(out);
                    out.push(b);
                    self.name.clear();
                    self.name.push(b.to_ascii_lowercase());
                    self.state = State::TagName { end: false };
                }
                _ => {
                    // `<` followed by anything else is text.
                    self.release(out);
                    self.state = State::Data;
                    self.step(b, out);
                }
            },
            State::EndTagOpen => {
                if b.is_ascii_alphabetic() {
                    self.held.push(b);
                    self.name.clear();
                    self.name.push(b.to_ascii_lowercase());
                    self.state = State::TagName { end: true };
                } else {
                    self.release(out);
                    out.push(b);
                    self.state = if b == b'>' { State::Data } else { State::Bogus };
                }
            }
            State::TagName { end } => {
                if !is_name_end(b) {
                    if self.name.len() < MAX_NAME {
                        self.name.push(b.to_ascii_lowercase());
                    }
                    if end && self.name.len() < MAX_NAME {
                        self.held.push(b);
                    } else {
                        self.release(out);
                        out.push(b);
                    }
                    return;
                }
                if end && (self.name == b"head" || self.name == b"body") {
                    out.extend_from_slice(SCRIPT_TAG.as_bytes());
                    self.release(out);
                    out.push(b);
                    self.state = State::Done;
                    return;
                }
                self.release(out);
                let raw = !end && RAW_TEXT.contains(&self.name.as_slice());
                if raw {
                    self.raw_name.clone_from(&self.name);
                }
                self.state = State::InTag { quote: None, raw };
                self.step(b, out);
            }
            State::InTag { quote, raw } => {
                out.push(b);
                self.state = match (quote, b) {
                    (Some(q), _) if b == q => State::InTag { quote: None, raw },
                    (Some(_), _) => State::InTag { quote, raw },
                    (None, b'"' | b'\'') => State::InTag {
                        quote: Some(b),
                        raw,
                    },
                    (None, b'>') if raw => State::RawText { matched: 0 },
                    (None, b'>') => State::Data,
                    (None, _) => State::InTag { quote, raw },
                };
            }
            State::MarkupOpen { dashes } => {
                out.push(b);
                self.state = match b {
                    b'-' if dashes == 1 => State::Comment { dashes: 0 },
                    b'-' => State::MarkupOpen { dashes: 1 },
                    b'>' => State::Data,
                    _ => State::Bogus,
                };
            }
            State::Comment { dashes } => {
                out.push(b);
                self.state = match b {
                    b'-' => State::Comment {
                        dashes: (dashes + 1).min(2),
                    },
                    b'>' if dashes >= 2 => State::Data,
                    _ => State::Comment { dashes: 0 },
                };
            }
            State::Bogus => {
                out.push(b);
                if b == b'>' {
                    self.state = State::Data;
                }
            }
            State::RawText { matched } => {
                out.push(b);
                let target_len = 2 + self.raw_name.len();
                let expected = match matched {
                    0 => Some(b'<'),
                    1 => Some(b'/'),
                    n if n < target_len => Some(self.raw_name[n - 2]),
                    _ => None,
                };
                self.state = match expected {
                    Some(e) if b.to_ascii_lowercase() == e => State::RawText {
                        matched: matched + 1,
                    },
                    // The whole `</name` matched: its end must follow.
                    None if is_name_end(b) => {
                        let state = State::InTag {
                            quote: None,
                            raw: false,
                        };
                        if b == b'>' {
                            State::Data
                        } else {
                            state
                        }
                    }
                    _ => State::RawText {
                        matched: usize::from(b == b'<'),
                    },
                };
            }
            State::Done => out.push(b),
        }
    }
}

/// The proxied response, with the script injected when [`should_inject`] says so.
pub fn maybe_inject(
    response: web_sys::Response,
    config: &Config,
    source: Source,
    method: &str,
) -> web_sys::Response {
    if !may_inject(config, source) {
        return response;
    }
    let headers = response.headers();
    let content_type = headers.get("content-type").ok().flatten();
    let content_encoding = headers.get("content-encoding").ok().flatten();
    let page = PageFacts {
        method,
        status: response.status(),
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
    };
    if should_inject(config, source, &page) {
        inject(response)
    } else {
        response
    }
}

/// The origin's response with the script injected into its streamed body, or unchanged when
/// it cannot be (no body, or a body that cannot be read as a stream).
pub fn inject(response: web_sys::Response) -> web_sys::Response {
    let status = response.status();
    let status_text = response.status_text();
    let Ok(headers) = web_sys::Headers::new_with_headers(&response.headers()) else {
        return response;
    };
    if response.body().is_none() {
        return response;
    }
    let mut original = worker::Response::from(response);
    let body = match original.stream() {
        Ok(body) => body,
        Err(_) => return original.into(),
    };
    let rewritten = stream::unfold(
        (body, ScriptInjector::new(), false),
        |(mut body, mut injector, ended)| async move {
            if ended {
                return None;
            }
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        let ready = injector.push(&chunk);
                        if !ready.is_empty() {
                            return Some((
                                Ok::<Vec<u8>, worker::Error>(ready),
                                (body, injector, false),
                            ));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (body, injector, true))),
                    None => {
                        let rest = injector.finish();
                        return Some((Ok(rest), (body, injector, true)));
                    }
                }
            }
        },
    );
    let streamed = match worker::Response::from_stream(rewritten) {
        Ok(r) => web_sys::Response::from(r),
        Err(_) => return original.into(),
    };
    let _ = headers.delete("content-length");
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_status_text(&status_text);
    init.set_headers(&headers);
    match web_sys::Response::new_with_opt_readable_stream_and_init(streamed.body().as_ref(), &init)
    {
        Ok(r) => r,
        // Headers could not be set on a new response: the original body is already being
        // read, so send the rewritten stream with default headers rather than nothing.
        Err(_) => streamed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rewrite(chunks: &[&str]) -> String {
        let mut injector = ScriptInjector::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(injector.push(c.as_bytes()));
        }
        out.extend(injector.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn script_goes_before_the_end_of_head_once() {
        let html =
            "<!doctype html><html><head><title>x</title></head><body><p>hi</p></body></html>";
        let out = rewrite(&[html]);
        assert_eq!(
            out,
            format!("<!doctype html><html><head><title>x</title>{SCRIPT_TAG}</head><body><p>hi</p></body></html>")
        );
    }

    #[test]
    fn tag_split_across_chunks_is_still_found() {
        let out = rewrite(&[
            "<html><he",
            "ad><meta charset=utf-8></he",
            "ad><body>b</bo",
            "dy></html>",
        ]);
        assert_eq!(
            out,
            format!("<html><head><meta charset=utf-8>{SCRIPT_TAG}</head><body>b</body></html>")
        );
    }

    #[test]
    fn without_head_it_goes_at_the_end_of_body() {
        let out = rewrite(&["<html><body><p>x</p></body></html>"]);
        assert_eq!(
            out,
            format!("<html><body><p>x</p>{SCRIPT_TAG}</body></html>")
        );
    }

    #[test]
    fn strings_that_look_like_tags_are_not_taken_for_them() {
        let html = "<html><head><script>var s = '</head>';</script></head><body></body></html>";
        let out = rewrite(&[html]);
        assert_eq!(out.matches(SCRIPT_TAG).count(), 1);
        assert!(
            out.contains(&format!("</script>{SCRIPT_TAG}</head>")),
            "{out}"
        );
    }

    #[test]
    fn a_head_left_open_gets_the_script_before_the_end_of_body() {
        let out = rewrite(&["<html><head><title>t</title><body>x</body></html>"]);
        assert_eq!(out.matches(SCRIPT_TAG).count(), 1, "{out}");
        assert!(out.contains(&format!("x{SCRIPT_TAG}</body>")), "{out}");
    }

    #[test]
    fn comments_attributes_and_raw_text_hide_lookalikes() {
        let html = concat!(
            "<HTML><Head><!-- </head> --><!--></head>-->",
            "<meta content=\"a></head>b\"><meta content='</body>'>",
            "<title></head></title><style>p{}</HEAD></style><noscript></body></noscript>",
            "<![CDATA[</head>]]><?pi </head>?>",
            "</HEAD ><body></body></html>"
        );
        let out = rewrite(&[html]);
        assert_eq!(out.matches(SCRIPT_TAG).count(), 1);
        assert!(out.contains(&format!("{SCRIPT_TAG}</HEAD >")), "{out}");
        assert_eq!(out.replacen(SCRIPT_TAG, "", 1), html);
    }

    #[test]
    fn any_chunking_gives_the_same_bytes() {
        let docs = [
            "<!doctype html><html><head><title>x</title><script>if (a </b) {}</script></head><body>é</body></html>",
            "<html><body><p>x</p></body></html>",
            "<p>no head < here</p></x-very-long-custom-element-name>",
            "<html><head></heady></head></html>",
        ];
        for doc in docs {
            let whole = rewrite(&[doc]);
            for size in 1..8 {
                let bytes = doc.as_bytes();
                let mut injector = ScriptInjector::new();
                let mut out = Vec::new();
                for chunk in bytes.chunks(size) {
                    out.extend(injector.push(chunk));
                }
                out.extend(injector.finish());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    whole,
                    "chunks of {size}: {doc}"
                );
            }
        }
        assert!(rewrite(&[docs[3]]).contains(&format!("</heady>{SCRIPT_TAG}</head>")));
    }

    #[test]
    fn a_fragment_without_head_or_body_is_unchanged() {
        assert_eq!(rewrite(&["<p>partial</p>"]), "<p>partial</p>");
        assert_eq!(rewrite(&[""]), "");
    }

    #[test]
    fn bytes_come_out_as_they_go_in() {
        let mut injector = ScriptInjector::new();
        let first = injector.push(b"<html><head><title>t</title></head><body>");
        assert!(
            String::from_utf8_lossy(&first).contains(SCRIPT_TAG),
            "streamed, not held back"
        );
        let big = "x".repeat(100_000);
        let out = injector.push(big.as_bytes());
        assert!(
            out.len() >= 99_000,
            "text is passed on promptly: {}",
            out.len()
        );
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_pairs(vars)
    }

    #[test]
    fn injection_conditions() {
        let on = config(&[("INJECT_CLIENT_SCRIPT", "true")]);
        let page = PageFacts {
            method: "GET",
            status: 200,
            content_type: Some("text/html; charset=utf-8"),
            content_encoding: None,
        };
        assert!(should_inject(&on, Source::NextAuth, &page));
        assert!(!should_inject(&on, Source::Clerk, &page));
        assert!(!should_inject(&on, Source::Anonymous, &page));
        assert!(!should_inject(&config(&[]), Source::NextAuth, &page));
        let observe = config(&[
            ("INJECT_CLIENT_SCRIPT", "true"),
            ("MIGRATION_PHASE", "observe"),
        ]);
        assert!(!should_inject(&observe, Source::NextAuth, &page));
        let with = |f: &dyn Fn(&mut PageFacts)| {
            let mut p = PageFacts { ..page };
            f(&mut p);
            should_inject(&on, Source::NextAuth, &p)
        };
        assert!(!with(&|p| p.content_encoding = Some("gzip")));
        assert!(with(&|p| p.content_encoding = Some("identity")));
        assert!(!with(&|p| p.content_type = Some("application/json")));
        assert!(!with(&|p| p.content_type = Some("text/htmlx")));
        assert!(with(&|p| p.content_type = Some("TEXT/HTML")));
        assert!(!with(&|p| p.content_type = None));
        assert!(!with(&|p| p.method = "HEAD"));
        assert!(!with(&|p| p.status = 206));
        assert!(!with(&|p| p.status = 304));
        assert!(!with(&|p| p.status = 404));
    }
}
