//! SubscribeToShard's response framing: the AWS event-stream binary format (a prelude, typed
//! headers, a payload, CRCs), written with aws-smithy-eventstream so the framing is the same code
//! the Rust SDK reads it with.
//!
//! The response opens with an `initial-response` event (an empty structure), then carries one
//! `SubscribeToShardEvent` per batch, and may end with an exception message.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::Bytes;

use crate::codec::{self, Doc, Format};
use crate::error::KinesisError;

/// The `:event-type` of the first message of a subscription.
pub const INITIAL_RESPONSE: &str = "initial-response";
/// The `:event-type` of each batch of records.
pub const SUBSCRIBE_TO_SHARD_EVENT: &str = "SubscribeToShardEvent";

fn header(name: &'static str, value: impl Into<String>) -> Header {
    Header::new(name, HeaderValue::String(StrBytes::from(value.into())))
}

fn frame(
    headers: Vec<Header>,
    payload: Vec<u8>,
) -> Result<Bytes, aws_smithy_eventstream::error::Error> {
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    write_message_to(&message, &mut out)?;
    Ok(Bytes::from(out))
}

/// One event message: `:message-type` "event", `:event-type`, `:content-type` of `format`, and
/// `payload` encoded in `format`.
pub fn event(event_type: &str, format: Format, payload: &Doc) -> Bytes {
    let headers = vec![
        header(":message-type", "event"),
        header(":event-type", event_type),
        header(":content-type", format.content_type()),
    ];
    match frame(headers, codec::encode(format, payload)) {
        Ok(bytes) => bytes,
        // Only a payload beyond the frame's 32-bit length or an over-long header can fail; the
        // subscriber is told instead of being sent a corrupt frame.
        Err(e) => exception(
            &KinesisError::internal(format!("could not frame a {event_type} event: {e}")),
            format,
        ),
    }
}

/// An exception message: `:message-type` "exception", `:exception-type` the Kinesis error type,
/// `:content-type`, and a `{"message": ...}` payload.
pub fn exception(err: &KinesisError, format: Format) -> Bytes {
    let headers = vec![
        header(":message-type", "exception"),
        header(":exception-type", err.type_name.clone()),
        header(":content-type", format.content_type()),
    ];
    let payload = Doc::map([("message", Doc::str(err.message.clone()))]);
    match frame(headers, codec::encode(format, &payload)) {
        Ok(bytes) => bytes,
        Err(_) => {
            // The message is the only unbounded part; a short fixed one always fits.
            let payload = Doc::map([("message", Doc::str("internal error"))]);
            let headers = vec![
                header(":message-type", "exception"),
                header(":exception-type", "InternalFailure"),
                header(":content-type", format.content_type()),
            ];
            frame(headers, codec::encode(format, &payload)).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

    use super::*;

    fn decode_all(mut bytes: &[u8]) -> Vec<Message> {
        let mut decoder = MessageFrameDecoder::new();
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match decoder.decode_frame(&mut bytes).unwrap() {
                DecodedFrame::Complete(m) => out.push(m),
                DecodedFrame::Incomplete => panic!("incomplete frame"),
            }
        }
        out
    }

    fn header_str<'a>(m: &'a Message, name: &str) -> &'a str {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .unwrap_or_else(|| panic!("no header {name}"))
            .value()
            .as_string()
            .unwrap()
            .as_str()
    }

    #[test]
    fn initial_response_and_events_decode() {
        let record = Doc::map([
            (
                "SequenceNumber",
                Doc::str("49590338271490256608559692538361571095921575989136588898"),
            ),
            (
                "ApproximateArrivalTimestamp",
                Doc::Timestamp(1_700_000_000_123),
            ),
            ("Data", Doc::blob(b"hello".to_vec())),
            ("PartitionKey", Doc::str("pk")),
        ]);
        let batch = Doc::map([
            ("Records", Doc::list([record])),
            ("ContinuationSequenceNumber", Doc::str("1")),
            ("MillisBehindLatest", Doc::Int(0)),
        ]);
        for format in [Format::Json, Format::Cbor] {
            let mut stream = Vec::new();
            stream.extend_from_slice(&event(INITIAL_RESPONSE, format, &Doc::empty_map()));
            stream.extend_from_slice(&event(SUBSCRIBE_TO_SHARD_EVENT, format, &batch));
            let messages = decode_all(&stream);
            assert_eq!(messages.len(), 2);

            assert_eq!(header_str(&messages[0], ":message-type"), "event");
            assert_eq!(header_str(&messages[0], ":event-type"), "initial-response");
            assert_eq!(
                header_str(&messages[0], ":content-type"),
                format.content_type()
            );
            assert_eq!(
                codec::decode(format, messages[0].payload()).unwrap(),
                Doc::empty_map()
            );

            assert_eq!(
                header_str(&messages[1], ":event-type"),
                "SubscribeToShardEvent"
            );
            let payload = codec::decode(format, messages[1].payload()).unwrap();
            if format == Format::Cbor {
                assert_eq!(payload, batch);
            } else {
                assert_eq!(payload.get("MillisBehindLatest"), Some(&Doc::Int(0)));
                let rec = &payload.get("Records").unwrap().as_list().unwrap()[0];
                assert_eq!(rec.get("Data").and_then(Doc::as_str), Some("aGVsbG8="));
                assert_eq!(
                    rec.get("ApproximateArrivalTimestamp"),
                    Some(&Doc::Float(1_700_000_000.123))
                );
            }
        }
    }

    #[test]
    fn json_initial_response_payload_is_an_empty_object() {
        let bytes = event(INITIAL_RESPONSE, Format::Json, &Doc::empty_map());
        assert_eq!(&decode_all(&bytes)[0].payload()[..], b"{}");
    }

    #[test]
    fn exceptions_decode() {
        let err = KinesisError::resource_in_use("Another active subscription exists");
        for format in [Format::Json, Format::Cbor] {
            let bytes = exception(&err, format);
            let m = &decode_all(&bytes)[0];
            assert_eq!(header_str(m, ":message-type"), "exception");
            assert_eq!(header_str(m, ":exception-type"), "ResourceInUseException");
            assert_eq!(header_str(m, ":content-type"), format.content_type());
            assert_eq!(
                codec::decode(format, m.payload()).unwrap(),
                Doc::map([("message", Doc::str("Another active subscription exists"))])
            );
        }
    }

    #[test]
    fn crcs_are_checked_by_the_decoder() {
        let bytes = event(INITIAL_RESPONSE, Format::Json, &Doc::empty_map());
        // Total length = prelude (12) + headers + payload + message CRC (4).
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());

        let mut bad_prelude = bytes.to_vec();
        bad_prelude[8] ^= 0xff;
        assert!(
            MessageFrameDecoder::new()
                .decode_frame(&bad_prelude[..])
                .is_err()
        );

        let mut bad_body = bytes.to_vec();
        let last = bad_body.len() - 5;
        bad_body[last] ^= 0xff;
        assert!(
            MessageFrameDecoder::new()
                .decode_frame(&bad_body[..])
                .is_err()
        );
    }

    #[test]
    fn frames_split_across_reads_decode() {
        let bytes = event(
            SUBSCRIBE_TO_SHARD_EVENT,
            Format::Cbor,
            &Doc::map([("A", Doc::Int(1))]),
        );
        let mut decoder = MessageFrameDecoder::new();
        let mut buf = bytes::BytesMut::new();
        let mut done = None;
        for chunk in bytes.chunks(5) {
            buf.extend_from_slice(chunk);
            if let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buf).unwrap() {
                done = Some(m);
            }
        }
        let m = done.unwrap();
        assert_eq!(header_str(&m, ":event-type"), "SubscribeToShardEvent");
    }
}
