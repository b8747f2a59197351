//! SPDY/3.1 frames as moby/spdystream writes and reads them: the 8-byte
//! control and data frame headers, SYN_STREAM / SYN_REPLY / RST_STREAM /
//! PING / GOAWAY payloads, and name/value header blocks compressed with one
//! zlib stream per direction primed with the SPDY/3 dictionary.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY/3 header compression dictionary (spdy/dictionary.go in spdystream).
const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");

/// The protocol version every control frame carries.
pub const VERSION: u16 = 3;
/// SYN_STREAM: the client opens a stream.
pub const SYN_STREAM: u16 = 1;
/// SYN_REPLY: the server accepts a stream.
pub const SYN_REPLY: u16 = 2;
/// RST_STREAM: a stream is aborted.
pub const RST_STREAM: u16 = 3;
/// PING: answered by echoing it.
pub const PING: u16 = 6;
/// GOAWAY: the peer stops opening streams.
pub const GOAWAY: u16 = 7;
/// The RST_STREAM status of a stream the sender gives up on.
pub const CANCEL: u32 = 5;
/// The FIN flag of data frames and SYN frames: the sender's half is done.
pub const FLAG_FIN: u8 = 0x01;
/// The largest payload one frame carries (24-bit length).
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

/// Why a frame could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame shorter than its fixed fields.
    #[error("SPDY control frame type {kind} too short ({len} bytes)")]
    Short {
        /// The frame type.
        kind: u16,
        /// Its payload length.
        len: usize,
    },
    /// The zlib header block did not inflate.
    #[error("SPDY header block does not decompress: {0}")]
    Inflate(String),
    /// The zlib header block did not deflate.
    #[error("SPDY header block does not compress: {0}")]
    Deflate(String),
    /// The name/value block is cut short.
    #[error("SPDY header block is truncated")]
    Truncated,
}

/// The fixed 8 bytes that start every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A control frame of `kind` with `flags` and `len` payload bytes.
    Control {
        /// Frame type.
        kind: u16,
        /// Flags.
        flags: u8,
        /// Payload length.
        len: usize,
    },
    /// A data frame for `stream`.
    Data {
        /// Stream id.
        stream: u32,
        /// Flags (FIN).
        flags: u8,
        /// Payload length.
        len: usize,
    },
}

impl Head {
    /// Parses the first 8 bytes of a frame.
    pub fn parse(b: [u8; 8]) -> Head {
        let first = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let len = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        if first & 0x8000_0000 != 0 {
            Head::Control { kind: (first & 0xffff) as u16, flags, len }
        } else {
            Head::Data { stream: first & 0x7fff_ffff, flags, len }
        }
    }

    /// The payload length that follows the head.
    pub fn payload_len(&self) -> usize {
        match self {
            Head::Control { len, .. } | Head::Data { len, .. } => *len,
        }
    }
}

fn put_head(out: &mut BytesMut, first: u32, flags: u8, len: usize) {
    out.put_u32(first);
    out.put_u32((u32::from(flags) << 24) | (len as u32 & 0x00ff_ffff));
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    put_head(&mut out, 0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind), flags, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A data frame; `data` must not exceed [`MAX_PAYLOAD`].
pub fn data(stream: u32, fin: bool, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + data.len());
    put_head(&mut out, stream & 0x7fff_ffff, if fin { FLAG_FIN } else { 0 }, data.len());
    out.put_slice(data);
    out.freeze()
}

/// A PING frame echoing `id`.
pub fn ping(id: u32) -> Bytes {
    control(PING, 0, &id.to_be_bytes())
}

/// A RST_STREAM frame with `status` (5 = CANCEL).
pub fn rst_stream(stream: u32, status: u32) -> Bytes {
    let mut p = Vec::with_capacity(8);
    p.extend_from_slice(&stream.to_be_bytes());
    p.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &p)
}

/// A GOAWAY frame (status OK) naming the last stream the server saw.
pub fn goaway(last_stream: u32) -> Bytes {
    let mut p = Vec::with_capacity(8);
    p.extend_from_slice(&last_stream.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    control(GOAWAY, 0, &p)
}

/// The stream id at the start of a control payload.
pub fn stream_id(payload: &[u8], kind: u16) -> Result<u32, FrameError> {
    let b: [u8; 4] = payload.get(..4).and_then(|s| s.try_into().ok()).ok_or(FrameError::Short { kind, len: payload.len() })?;
    Ok(u32::from_be_bytes(b) & 0x7fff_ffff)
}

/// Encodes a name/value block (names lowercased, one value per name).
pub fn encode_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Decodes a name/value block; a value holding NULs is several values.
pub fn decode_headers(block: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if b.len() < n {
            return Err(FrameError::Truncated);
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(h)
    }
    fn u32_at(b: &mut &[u8]) -> Result<usize, FrameError> {
        let s = take(b, 4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    let mut b = block;
    let n = u32_at(&mut b)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = u32_at(&mut b)?;
        let name = String::from_utf8_lossy(take(&mut b, len)?).to_ascii_lowercase();
        let len = u32_at(&mut b)?;
        let value = String::from_utf8_lossy(take(&mut b, len)?).into_owned();
        for v in value.split('\0') {
            out.push((name.clone(), v.to_owned()));
        }
    }
    Ok(out)
}

/// The header compression state of one direction of a connection.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    /// A compressor primed with the SPDY/3 dictionary.
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // zlib-rs always accepts a dictionary before the first byte.
        let _ = c.set_dictionary(DICTIONARY);
        Self(c)
    }

    /// Compresses one header block, sync-flushed so the peer can read it alone.
    pub fn deflate(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.0.compress_vec(&block[done..], &mut out, FlushCompress::Sync).map_err(|e| FrameError::Deflate(e.to_string()))?;
            if (self.0.total_in() - start) as usize == block.len() && out.capacity() > out.len() {
                return Ok(out);
            }
        }
    }

    /// A SYN_REPLY frame for `stream` with `headers`.
    pub fn syn_reply(&mut self, stream: u32, headers: &[(&str, &str)]) -> Result<Bytes, FrameError> {
        let mut p = stream.to_be_bytes().to_vec();
        p.extend_from_slice(&self.deflate(&encode_headers(headers))?);
        Ok(control(SYN_REPLY, 0, &p))
    }

    /// A SYN_STREAM frame (what a client sends; used by tests).
    pub fn syn_stream(&mut self, stream: u32, headers: &[(&str, &str)]) -> Result<Bytes, FrameError> {
        let mut p = stream.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&self.deflate(&encode_headers(headers))?);
        Ok(control(SYN_STREAM, 0, &p))
    }
}

/// The header decompression state of one direction of a connection.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A decompressor that supplies the SPDY/3 dictionary when the stream asks.
    pub fn new() -> Self {
        Self(Decompress::new(true))
    }

    /// Inflates one sync-flushed header block.
    pub fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            match self.0.decompress_vec(&input[done..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {
                    if (self.0.total_in() - start) as usize == input.len() && out.capacity() > out.len() {
                        return Ok(out);
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(DICTIONARY).map_err(|e| FrameError::Inflate(e.to_string()))?;
                }
                Err(e) => return Err(FrameError::Inflate(e.to_string())),
            }
        }
    }

    /// The stream id and headers of a SYN_STREAM payload.
    pub fn syn_stream(&mut self, payload: &[u8]) -> Result<(u32, Vec<(String, String)>), FrameError> {
        if payload.len() < 10 {
            return Err(FrameError::Short { kind: SYN_STREAM, len: payload.len() });
        }
        let id = stream_id(payload, SYN_STREAM)?;
        Ok((id, decode_headers(&self.inflate(&payload[10..])?)?))
    }

    /// The stream id and headers of a SYN_REPLY payload (used by tests).
    pub fn syn_reply(&mut self, payload: &[u8]) -> Result<(u32, Vec<(String, String)>), FrameError> {
        let id = stream_id(payload, SYN_REPLY)?;
        Ok((id, decode_headers(&self.inflate(&payload[4..])?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream_per_direction() {
        let (mut d, mut i) = (Deflater::new(), Inflater::new());
        for n in 1..4u32 {
            let id = n.to_string();
            let f = d.syn_stream(n * 2 + 1, &[("streamType", "stdout"), ("requestID", &id)]).expect("deflate");
            let Head::Control { kind, len, .. } = Head::parse(f[..8].try_into().expect("head")) else { panic!("not control") };
            assert_eq!((kind, len), (SYN_STREAM, f.len() - 8));
            let (sid, h) = i.syn_stream(&f[8..]).expect("inflate");
            assert_eq!(sid, n * 2 + 1);
            assert_eq!(h, vec![("streamtype".to_owned(), "stdout".to_owned()), ("requestid".to_owned(), id)]);
        }
    }

    #[test]
    fn the_dictionary_is_spdy3s_and_its_adler_goes_in_the_zlib_header() {
        assert_eq!(DICTIONARY.len(), 1423);
        let block = Deflater::new().deflate(&encode_headers(&[])).expect("deflate");
        // FDICT set, then the dictionary's Adler-32 (spdy/3 spec: 0xe3c6a7c2 after the header).
        assert_eq!(block[1] & 0x20, 0x20);
        assert_eq!(&block[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn data_frames_carry_stream_and_fin() {
        let f = data(7, true, b"hi");
        assert_eq!(Head::parse(f[..8].try_into().expect("head")), Head::Data { stream: 7, flags: FLAG_FIN, len: 2 });
        assert_eq!(&f[8..], b"hi");
        let values = decode_headers(&encode_headers(&[("X", "a\0b")])).expect("decode");
        assert_eq!(values, vec![("x".to_owned(), "a".to_owned()), ("x".to_owned(), "b".to_owned())]);
    }
}
