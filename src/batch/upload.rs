//! Reading an import upload (`POST /__auth-bridge/admin/imports`) as it streams in: bytes are
//! cut into lines, each line is validated on its own (a bad line is rejected, never the file),
//! and accepted records are kept as their normalised stored line. Nothing here touches the
//! runtime; the glue feeds chunks and writes [`Upload::page`]s to KV.
//!
//! Memory stays close to the accepted data: one `String` per accepted line (shrunk to fit),
//! its id hash, and the set of ids seen (to reject a repeated id). The body itself is never
//! held whole, and pages are built one at a time when stored.

use std::collections::HashMap;

use crate::migration::ledger::{bucket_count, id_hash};
use crate::migration::record::MAX_LINE_BYTES;
use crate::migration::{parse_line, LineError};

/// Largest accepted upload body. A 100,000-line export of about 30 MB fits; larger files are
/// sent in several uploads (`scripts/import-users` cuts 5,000-line chunks by default).
pub const MAX_UPLOAD_BYTES: usize = 48 * 1024 * 1024;
/// Most lines in one upload (blank lines included).
pub const MAX_UPLOAD_LINES: usize = 150_000;

/// Why an upload is refused as a whole (`413`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTooLarge {
    Bytes,
    Lines,
}

impl UploadTooLarge {
    pub fn message(self) -> String {
        match self {
            UploadTooLarge::Bytes => format!(
                "import body over {} MiB; split the file into several uploads \
                 (scripts/import-users does this with --chunk-lines / --chunk-bytes)",
                MAX_UPLOAD_BYTES / (1024 * 1024)
            ),
            UploadTooLarge::Lines => format!(
                "import body over {MAX_UPLOAD_LINES} lines; split the file into several uploads \
                 (scripts/import-users does this with --chunk-lines)"
            ),
        }
    }
}

/// Collects an upload chunk by chunk.
#[derive(Debug, Default)]
pub struct UploadBuilder {
    partial: Vec<u8>,
    /// The current line outgrew [`MAX_LINE_BYTES`]: the rest of it is not kept.
    partial_oversize: bool,
    line_no: usize,
    bytes: usize,
    lines: Vec<String>,
    hashes: Vec<u32>,
    first_seen: HashMap<String, u32>,
    rejected: Vec<LineError>,
}

impl UploadBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the body.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), UploadTooLarge> {
        self.bytes += chunk.len();
        if self.bytes > MAX_UPLOAD_BYTES {
            return Err(UploadTooLarge::Bytes);
        }
        while let Some(at) = chunk.iter().position(|b| *b == b'\n') {
            self.append(&chunk[..at]);
            self.end_line()?;
            chunk = &chunk[at + 1..];
        }
        self.append(chunk);
        Ok(())
    }

    /// The body ended: handles a last line without a newline and returns the upload.
    pub fn finish(mut self) -> Result<Upload, UploadTooLarge> {
        if !self.partial.is_empty() || self.partial_oversize {
            self.end_line()?;
        }
        let buckets = bucket_count(self.lines.len());
        // Counting sort of line indices by bucket, so each page is built in one pass.
        let mut starts = vec![0usize; buckets as usize + 1];
        for h in &self.hashes {
            starts[(h % buckets) as usize + 1] += 1;
        }
        for b in 0..buckets as usize {
            starts[b + 1] += starts[b];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; self.lines.len()];
        for (i, h) in self.hashes.iter().enumerate() {
            let b = (h % buckets) as usize;
            order[next[b]] = i as u32;
            next[b] += 1;
        }
        Ok(Upload {
            lines: self.lines,
            order,
            starts,
            buckets,
            rejected: self.rejected,
        })
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.partial_oversize {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE_BYTES + 1 {
            self.partial_oversize = true;
            self.partial = Vec::new();
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    fn end_line(&mut self) -> Result<(), UploadTooLarge> {
        self.line_no += 1;
        if self.line_no > MAX_UPLOAD_LINES {
            return Err(UploadTooLarge::Lines);
        }
        let line_no = self.line_no;
        let oversize = std::mem::take(&mut self.partial_oversize);
        let raw = std::mem::take(&mut self.partial);
        let raw = raw.strip_suffix(b"\r").unwrap_or(&raw);
        if oversize {
            self.reject(
                line_no,
                format!("line is over the {MAX_LINE_BYTES}-byte limit"),
            );
            return Ok(());
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            self.reject(line_no, "line is not valid UTF-8".into());
            return Ok(());
        };
        match parse_line(text) {
            Ok(record) => {
                if let Some(first) = self.first_seen.get(&record.id) {
                    let error = format!("duplicate `id` (first seen on line {first})");
                    self.reject(line_no, error);
                    return Ok(());
                }
                let mut stored = record.to_line();
                stored.shrink_to_fit();
                self.hashes.push(id_hash(&record.id));
                self.first_seen.insert(record.id, line_no as u32);
                self.lines.push(stored);
            }
            Err(error) => self.reject(line_no, error),
        }
        Ok(())
    }

    fn reject(&mut self, line: usize, error: String) {
        self.rejected.push(LineError { line, error });
    }
}

/// A validated upload, ready to be stored as bucket pages.
#[derive(Debug)]
pub struct Upload {
    lines: Vec<String>,
    order: Vec<u32>,
    starts: Vec<usize>,
    buckets: u32,
    pub rejected: Vec<LineError>,
}

impl Upload {
    pub fn accepted(&self) -> usize {
        self.lines.len()
    }

    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The NDJSON page of `bucket` (empty when no record hashed there).
    pub fn page(&self, bucket: u32) -> String {
        let b = bucket as usize;
        let range = self.starts[b]..self.starts[b + 1];
        let size: usize = self.order[range.clone()]
            .iter()
            .map(|i| self.lines[*i as usize].len() + 1)
            .sum();
        let mut page = String::with_capacity(size);
        for i in &self.order[range] {
            page.push_str(&self.lines[*i as usize]);
            page.push('\n');
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::ledger::bucket_of;
    use crate::migration::parse_ndjson;

    fn line(id: usize) -> String {
        format!(r#"{{"id":"u{id}","email":"u{id}@example.com","email_verified":true}}"#)
    }

    fn build(body: &[u8], chunk: usize) -> Upload {
        let mut b = UploadBuilder::new();
        for c in body.chunks(chunk) {
            b.push(c).unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn matches_the_whole_body_parser_whatever_the_chunking() {
        let body = format!(
            "{}\n\n{}\r\n{{\"id\":\"x\",\"email\":\"x@example.com\",\"role\":\"admin\"}}\nnot json\n{}\n{}",
            line(1),
            line(2),
            line(1),
            line(3)
        );
        let (records, rejected) = parse_ndjson(&body);
        for chunk in [1, 3, 7, 64, 10_000] {
            let up = build(body.as_bytes(), chunk);
            assert_eq!(up.accepted(), records.len(), "chunk {chunk}");
            assert_eq!(up.rejected, rejected, "chunk {chunk}");
        }
        let up = build(body.as_bytes(), 5);
        let lines: Vec<usize> = up.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(up.rejected[0].error.contains("unknown field `role`"));
        assert!(up.rejected[2].error.contains("line 1"));
    }

    #[test]
    fn pages_hold_every_record_once_in_its_bucket() {
        let body: String = (0..2_345).map(|i| line(i) + "\n").collect();
        let up = build(body.as_bytes(), 4096);
        assert_eq!(up.accepted(), 2_345);
        assert_eq!(up.buckets(), bucket_count(2_345));
        let mut seen = 0;
        for b in 0..up.buckets() {
            for l in up.page(b).lines() {
                let r = parse_line(l).unwrap();
                assert_eq!(bucket_of(&r.id, up.buckets()), b);
                seen += 1;
            }
        }
        assert_eq!(seen, 2_345);
    }

    #[test]
    fn an_oversized_line_is_rejected_without_being_kept() {
        let big = format!(
            r#"{{"id":"big","email":"b@example.com","name":"{}"}}"#,
            "a".repeat(MAX_LINE_BYTES + 10)
        );
        let body = format!("{}\n{big}\n{}\n", line(1), line(2));
        let up = build(body.as_bytes(), 1000);
        assert_eq!(up.accepted(), 2);
        assert_eq!(up.rejected.len(), 1);
        assert_eq!(up.rejected[0].line, 2);
        assert!(up.rejected[0].error.contains("byte limit"));
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let mut body = line(1).into_bytes();
        body.extend_from_slice(b"\n{\"id\":\"\xff\"}\n");
        let up = build(&body, 7);
        assert_eq!(up.accepted(), 1);
        assert_eq!(up.rejected[0].line, 2);
        assert!(up.rejected[0].error.contains("UTF-8"));
    }

    #[test]
    fn limits_refuse_the_whole_upload() {
        let mut b = UploadBuilder::new();
        let chunk = vec![b' '; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..=(MAX_UPLOAD_BYTES / chunk.len()) {
            result = b.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(UploadTooLarge::Bytes));
        let mut b = UploadBuilder::new();
        let newlines = vec![b'\n'; MAX_UPLOAD_LINES + 1];
        assert_eq!(b.push(&newlines), Err(UploadTooLarge::Lines));
        assert!(UploadTooLarge::Bytes.message().contains("48 MiB"));
    }
}
