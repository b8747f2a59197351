//! The server side of a SPDY/3.1 connection as kubectl 1.27–1.29 opens it for
//! exec (moby spdystream through apimachinery's httpstream): the client opens
//! streams with SYN_STREAM, the server accepts each with SYN_REPLY, data
//! frames carry bytes and FIN ends a half. Flow-control windows are not
//! enforced, as spdystream does not enforce them either.

pub mod frame;
pub mod upgrade;

use bytes::Bytes;
use frame::{Deflater, FrameError, Head, Inflater};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How many frames may wait for the socket before writers wait.
const OUT_QUEUE: usize = 64;
/// How many accepted streams may wait for the handler.
const NEW_STREAMS: usize = 16;

/// What the writer task is asked to put on the wire.
enum Out {
    Reply(u32),
    Frame(Bytes),
    Shutdown,
}

/// One stream the client opened.
pub struct Stream {
    /// Its id.
    pub id: u32,
    /// Its SYN_STREAM headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The bytes the client sends; ends at the client's FIN or reset.
    // Unbounded: the reader must never wait on one stream (a resize stream
    // nobody reads must not stall stdin); spdystream buffers the same way.
    pub data: mpsc::UnboundedReceiver<Bytes>,
    /// Writes to the client.
    pub writer: StreamWriter,
}

impl Stream {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Writes data frames on one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

/// The connection is gone.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY connection is closed")]
pub struct Closed;

impl StreamWriter {
    /// Sends `data` (split into frames as needed).
    pub async fn write(&self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(frame::MAX_PAYLOAD) {
            self.out.send(Out::Frame(frame::data(self.id, false, chunk))).await.map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Ends the server's half of the stream (an empty data frame with FIN).
    pub async fn close(&self) -> Result<(), Closed> {
        self.out.send(Out::Frame(frame::data(self.id, true, &[]))).await.map_err(|_| Closed)
    }

    /// Aborts the stream in both directions (RST_STREAM, status CANCEL).
    pub async fn reset(&self) -> Result<(), Closed> {
        self.out.send(Out::Frame(frame::rst_stream(self.id, frame::CANCEL))).await.map_err(|_| Closed)
    }
}

/// A served SPDY connection: streams arrive on [`Connection::accept`].
pub struct Connection {
    streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

/// Why reading the connection stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl Connection {
    /// Serves SPDY on `io` (an upgraded HTTP/1.1 connection).
    pub fn start<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let (new_tx, streams) = mpsc::channel(NEW_STREAMS);
        let writer = tokio::spawn(write_loop(wr, out_rx));
        let reader_out = out.clone();
        let reader = tokio::spawn(async move {
            if let Err(e) = read_loop(rd, reader_out, new_tx).await {
                tracing::debug!(error = %e, "SPDY connection ended");
            }
        });
        Connection { streams, out, reader, writer }
    }

    /// The next stream the client opens; `None` once the connection is gone.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.streams.recv().await
    }

    /// Flushes what was queued, sends GOAWAY and closes the connection.
    pub async fn close(self) {
        let _ = self.out.send(Out::Frame(frame::goaway(0))).await;
        let _ = self.out.send(Out::Shutdown).await;
        drop(self.out);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.writer).await;
        self.reader.abort();
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Out>) {
    let mut deflater = Deflater::new();
    while let Some(o) = rx.recv().await {
        let bytes = match o {
            Out::Frame(b) => b,
            Out::Reply(id) => match deflater.syn_reply(id, &[]) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "SPDY reply");
                    break;
                }
            },
            Out::Shutdown => break,
        };
        if wr.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, out: mpsc::Sender<Out>, new: mpsc::Sender<Stream>) -> Result<(), ReadError> {
    let mut inflater = Inflater::new();
    let mut open: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    loop {
        let mut head = [0u8; 8];
        rd.read_exact(&mut head).await?;
        let head = Head::parse(head);
        let mut payload = vec![0u8; head.payload_len()];
        rd.read_exact(&mut payload).await?;
        match head {
            Head::Data { stream, flags, .. } => {
                if let Some(tx) = open.get(&stream)
                    && !payload.is_empty()
                {
                    let _ = tx.send(Bytes::from(payload));
                }
                if flags & frame::FLAG_FIN != 0 {
                    open.remove(&stream);
                }
            }
            Head::Control { kind: frame::SYN_STREAM, flags, .. } => {
                let (id, headers) = inflater.syn_stream(&payload)?;
                let (tx, data) = mpsc::unbounded_channel();
                if flags & frame::FLAG_FIN == 0 {
                    open.insert(id, tx);
                }
                if out.send(Out::Reply(id)).await.is_err() {
                    return Ok(());
                }
                let writer = StreamWriter { id, out: out.clone() };
                if new.send(Stream { id, headers, data, writer }).await.is_err() {
                    return Ok(());
                }
            }
            Head::Control { kind: frame::RST_STREAM, .. } => {
                open.remove(&frame::stream_id(&payload, frame::RST_STREAM)?);
            }
            Head::Control { kind: frame::PING, .. } => {
                let id = frame::stream_id(&payload, frame::PING)?;
                if out.send(Out::Frame(frame::ping(id))).await.is_err() {
                    return Ok(());
                }
            }
            Head::Control { kind: frame::GOAWAY, .. } => return Ok(()),
            // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.
            Head::Control { .. } => {}
        }
    }
}
