//! Request bodies built by rubra itself: a raw image, or a `multipart/form-data`
//! form of several, from memory or streamed from disk in fixed-size chunks.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::collections::VecDeque;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// Chunk size when streaming a file into a request.
const CHUNK: usize = 256 * 1024;

/// Where a file's bytes come from when a request is (re)built.
#[derive(Debug, Clone)]
pub enum Source {
    /// Already read (small files: read once, hashed, sent from memory).
    Memory(Bytes),
    /// Read again from disk on each attempt, `len` bytes expected.
    File(PathBuf, u64),
}

impl Source {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File(_, n) => *n,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request body: its pieces, and their total length for `Content-Length`.
#[derive(Debug, Clone)]
pub struct Body {
    pieces: Vec<Source>,
    len: u64,
}

impl Body {
    /// A raw body: just the image.
    pub fn raw(src: Source) -> Body {
        let len = src.len();
        Body {
            pieces: vec![src],
            len,
        }
    }

    /// A `multipart/form-data` body with one file part per `(filename,
    /// content type, source)`, under `boundary`.
    pub fn multipart(boundary: &str, parts: &[(&str, &str, Source)]) -> Body {
        let mut pieces = Vec::with_capacity(parts.len() * 2 + 1);
        let mut pending = BytesMut::new();
        for (name, ctype, src) in parts {
            pending.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            pending.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                     Content-Type: {ctype}\r\n\r\n",
                    escape_filename(name)
                )
                .as_bytes(),
            );
            match src {
                Source::Memory(b) => pending.extend_from_slice(b),
                Source::File(..) => {
                    pieces.push(Source::Memory(pending.split().freeze()));
                    pieces.push(src.clone());
                }
            }
            pending.extend_from_slice(b"\r\n");
        }
        pending.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        pieces.push(Source::Memory(pending.freeze()));
        let len = pieces.iter().map(Source::len).sum();
        Body { pieces, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A `reqwest` body: one buffer when everything is in memory, else a stream
    /// that reads the files chunk by chunk (bounded memory).
    pub fn into_reqwest(self) -> reqwest::Body {
        if let [Source::Memory(b)] = self.pieces.as_slice() {
            return reqwest::Body::from(b.clone());
        }
        reqwest::Body::wrap_stream(stream(self.pieces))
    }
}

/// The pieces as a stream of chunks; a file that is shorter or longer than
/// expected ends the stream with an error (the request is then retried or
/// failed, never sent with a wrong length).
fn stream(pieces: Vec<Source>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct State {
        queue: VecDeque<Source>,
        open: Option<(tokio::fs::File, u64)>,
    }
    let state = State {
        queue: pieces.into(),
        open: None,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some((file, left)) = st.open.as_mut() {
                if *left == 0 {
                    let mut probe = [0u8; 1];
                    match file.read(&mut probe).await {
                        Ok(0) => {
                            st.open = None;
                            continue;
                        }
                        Ok(_) => return Some((Err(changed()), st)),
                        Err(e) => return Some((Err(e), st)),
                    }
                }
                let want = (*left).min(CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                return match file.read(&mut buf).await {
                    Ok(0) => Some((Err(changed()), st)),
                    Ok(n) => {
                        *left -= n as u64;
                        buf.truncate(n);
                        Some((Ok(buf.freeze()), st))
                    }
                    Err(e) => Some((Err(e), st)),
                };
            }
            match st.queue.pop_front()? {
                Source::Memory(b) => return Some((Ok(b), st)),
                Source::File(path, len) => match tokio::fs::File::open(&path).await {
                    Ok(f) => st.open = Some((f, len)),
                    Err(e) => return Some((Err(e), st)),
                },
            }
        }
    })
}

fn changed() -> std::io::Error {
    std::io::Error::other("file changed size while being uploaded")
}

/// Quotes a file name for `Content-Disposition` the way browsers do
/// (WHATWG: `"` → `%22`, CR → `%0D`, LF → `%0A`).
fn escape_filename(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A fresh boundary: 128 random bits, so it cannot plausibly occur in an image.
pub fn boundary() -> String {
    format!(
        "rubra-{:016x}{:016x}",
        crate::backoff::random_u64(),
        crate::backoff::random_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(body: Body) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = std::pin::pin!(stream(body.pieces));
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    #[tokio::test]
    async fn multipart_layout_memory_and_file_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.png");
        std::fs::write(&p, b"BBBB").expect("write");
        let mem = Body::multipart(
            "XX",
            &[
                (
                    "a\"1.jpg",
                    "image/jpeg",
                    Source::Memory(Bytes::from_static(b"AA")),
                ),
                (
                    "b.png",
                    "image/png",
                    Source::Memory(Bytes::from_static(b"BBBB")),
                ),
            ],
        );
        let streamed = Body::multipart(
            "XX",
            &[
                (
                    "a\"1.jpg",
                    "image/jpeg",
                    Source::Memory(Bytes::from_static(b"AA")),
                ),
                ("b.png", "image/png", Source::File(p, 4)),
            ],
        );
        let expected = "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%221.jpg\"\r\n\
            Content-Type: image/jpeg\r\n\r\nAA\r\n\
            --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.png\"\r\n\
            Content-Type: image/png\r\n\r\nBBBB\r\n--XX--\r\n";
        assert_eq!(mem.len(), expected.len() as u64);
        assert_eq!(streamed.len(), expected.len() as u64);
        assert_eq!(
            String::from_utf8(collect(mem).await).expect("utf8"),
            expected
        );
        assert_eq!(
            String::from_utf8(collect(streamed).await).expect("utf8"),
            expected
        );
    }

    #[tokio::test]
    async fn a_file_that_grew_is_an_error_not_a_wrong_body() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        std::fs::write(&p, b"12345").expect("write");
        let mut s = std::pin::pin!(stream(vec![Source::File(p, 3)]));
        assert_eq!(&s.next().await.expect("chunk").expect("ok")[..], b"123");
        assert!(s.next().await.expect("item").is_err());
    }
}
