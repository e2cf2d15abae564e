//! The frames between the server and an extraction worker, over the worker's stdin and
//! stdout: `[kind u8][len u32 LE][bytes]` one way, `[status u8][len u32 LE][bytes]` the
//! other. Status 0 carries the extracted text, 1 a JSON [`ExtractError`] (a refusal the
//! submitter should see). Anything else — a short read, an unknown byte — means the
//! worker is not healthy and is replaced.

use std::io::{self, Read, Write};

use cairn_core::kb::extract::{ExtractError, Kind};

pub const OK: u8 = 0;
pub const REFUSED: u8 = 1;

pub fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Text => 0,
        Kind::Markdown => 1,
        Kind::Html => 2,
    }
}

pub fn kind_from(byte: u8) -> Option<Kind> {
    match byte {
        0 => Some(Kind::Text),
        1 => Some(Kind::Markdown),
        2 => Some(Kind::Html),
        _ => None,
    }
}

pub fn header(tag: u8, len: usize) -> io::Result<[u8; 5]> {
    let len = u32::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    let l = len.to_le_bytes();
    Ok([tag, l[0], l[1], l[2], l[3]])
}

pub fn parse_header(head: [u8; 5]) -> (u8, usize) {
    let [tag, a, b, c, d] = head;
    (tag, u32::from_le_bytes([a, b, c, d]) as usize)
}

/// Reads one frame; `Ok(None)` at a clean end of input. Frames over `max` bytes are an
/// error (the server never sends one; a worker must not allocate for a lie).
pub fn read_frame(input: &mut impl Read, max: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match input.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (tag, len) = parse_header(head);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some((tag, body)))
}

pub fn write_frame(output: &mut impl Write, tag: u8, body: &[u8]) -> io::Result<()> {
    output.write_all(&header(tag, body.len())?)?;
    output.write_all(body)?;
    output.flush()
}

/// A worker's answer as bytes on the wire.
pub fn encode_reply(reply: &Result<String, ExtractError>) -> (u8, Vec<u8>) {
    match reply {
        Ok(text) => (OK, text.as_bytes().to_vec()),
        // Serialising a plain enum cannot fail; an empty body would read back as malformed.
        Err(e) => (REFUSED, serde_json::to_vec(e).unwrap_or_default()),
    }
}

/// The answer read back; `None` when the bytes are not a valid reply.
pub fn decode_reply(tag: u8, body: Vec<u8>) -> Option<Result<String, ExtractError>> {
    match tag {
        OK => String::from_utf8(body).ok().map(Ok),
        REFUSED => serde_json::from_slice(&body).ok().map(Err),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_lies_are_refused() -> io::Result<()> {
        let mut buf = Vec::new();
        write_frame(&mut buf, 2, b"<p>x</p>")?;
        let mut input = buf.as_slice();
        assert_eq!(read_frame(&mut input, 100)?, Some((2, b"<p>x</p>".to_vec())));
        assert_eq!(read_frame(&mut input, 100)?, None);
        let mut big = buf.as_slice();
        assert!(read_frame(&mut big, 3).is_err());
        let truncated = &buf[..buf.len() - 1];
        assert!(read_frame(&mut &truncated[..], 100).is_err());
        let refused = Err(ExtractError::TooDeep { depth: 300, limit: 256 });
        let (tag, body) = encode_reply(&refused);
        assert_eq!(decode_reply(tag, body), Some(refused));
        assert_eq!(decode_reply(9, vec![]), None);
        Ok(())
    }
}
