//! Response bodies from Clerk and the origin, read with a size cap while they stream: the
//! worker stops reading (and drops the stream) at the first byte past the cap, instead of
//! buffering a body of any size and measuring it afterwards. A `Content-Length` above the cap
//! is refused before reading anything.
//!
//! [`BodyLimit`] is the pure accumulator (host-tested); [`read_capped`] is the glue.

use futures::StreamExt;

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body (declared or received so far) is larger than the cap.
    TooLarge { max: usize },
    /// The stream failed.
    Read(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { max } => write!(f, "body larger than {max} bytes"),
            BodyError::Read(e) => write!(f, "body read failed: {e}"),
        }
    }
}

/// Collects chunks up to `max` bytes in total.
#[derive(Debug)]
pub struct BodyLimit {
    max: usize,
    bytes: Vec<u8>,
}

impl BodyLimit {
    pub fn new(max: usize) -> BodyLimit {
        BodyLimit {
            max,
            bytes: Vec::new(),
        }
    }

    /// Refuses a `Content-Length` above the cap (an unparsable one is left to the stream).
    pub fn check_declared(&self, content_length: Option<&str>) -> Result<(), BodyError> {
        match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) if n > self.max as u64 => Err(BodyError::TooLarge { max: self.max }),
            _ => Ok(()),
        }
    }

    /// Appends a chunk, or refuses it (keeping nothing more) when it would pass the cap.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if chunk.len() > self.max - self.bytes.len() {
            return Err(BodyError::TooLarge { max: self.max });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The body of `response`, at most `max` bytes; stops reading at the first chunk past it.
pub async fn read_capped(
    response: &mut worker::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut limit = BodyLimit::new(max);
    let declared = response.headers().get("content-length").ok().flatten();
    limit.check_declared(declared.as_deref())?;
    match response.body() {
        worker::ResponseBody::Empty => return Ok(Vec::new()),
        worker::ResponseBody::Body(bytes) => {
            limit.push(bytes)?;
            return Ok(limit.into_bytes());
        }
        worker::ResponseBody::Stream(_) => {}
    }
    let mut stream = response
        .stream()
        .map_err(|e| BodyError::Read(e.to_string()))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        // Dropping the stream on refusal cancels it: the rest is never downloaded.
        limit.push(&chunk)?;
    }
    Ok(limit.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_kept_up_to_the_cap_and_refused_past_it() {
        let mut limit = BodyLimit::new(10);
        assert_eq!(limit.push(b"hello"), Ok(()));
        assert_eq!(limit.push(b"world"), Ok(()));
        assert_eq!(limit.push(b"!"), Err(BodyError::TooLarge { max: 10 }));
        assert_eq!(limit.into_bytes(), b"helloworld");
    }

    #[test]
    fn one_huge_chunk_is_refused_without_being_copied() {
        let mut limit = BodyLimit::new(4);
        assert!(limit.push(&[0u8; 5]).is_err());
        assert!(limit.into_bytes().is_empty());
    }

    #[test]
    fn a_declared_length_past_the_cap_is_refused_before_reading() {
        let limit = BodyLimit::new(100);
        assert_eq!(limit.check_declared(Some("100")), Ok(()));
        assert_eq!(
            limit.check_declared(Some(" 101 ")),
            Err(BodyError::TooLarge { max: 100 })
        );
        assert_eq!(limit.check_declared(Some("nope")), Ok(()));
        assert_eq!(limit.check_declared(None), Ok(()));
    }
}
