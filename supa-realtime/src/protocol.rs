//! Phoenix channel frames and their two serializers: `vsn=1.0.0` sends
//! each message as a JSON object (`{"join_ref","ref","topic","event",
//! "payload"}`, what realtime-py speaks), `vsn=2.0.0` as a JSON array
//! (`[join_ref, ref, topic, event, payload]`, what realtime-js speaks).

use serde_json::{Value, json};

/// The serializer a socket asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// JSON objects.
    V1,
    /// JSON arrays.
    V2,
}

impl Vsn {
    /// `1.0.0` or `2.0.0` (absent: 1.0.0, as Phoenix defaults).
    pub fn parse(vsn: Option<&str>) -> Option<Self> {
        match vsn {
            None | Some("1.0.0") => Some(Self::V1),
            Some("2.0.0") => Some(Self::V2),
            _ => None,
        }
    }
}

/// One message, either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The `ref` of the join the message belongs to.
    pub join_ref: Option<String>,
    /// The message's own `ref` (a reply carries the request's).
    pub reference: Option<String>,
    /// `phoenix` or `realtime:{channel}`.
    pub topic: String,
    /// `phx_join`, `broadcast`, ...
    pub event: String,
    /// Always an object.
    pub payload: Value,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(
    /// What is wrong with it.
    pub &'static str,
);

/// A reference as Phoenix sends it: a string, or a number from some
/// clients; null is none.
fn reference(v: Option<&Value>) -> Result<Option<String>, Malformed> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Malformed("a ref must be a string")),
    }
}

impl Frame {
    /// Reads a text frame in `vsn`'s form.
    pub fn decode(text: &str, vsn: Vsn) -> Result<Self, Malformed> {
        let value: Value = serde_json::from_str(text).map_err(|_| Malformed("not JSON"))?;
        let (join_ref, reference, topic, event, payload) = match (vsn, value) {
            (Vsn::V1, Value::Object(mut m)) => (
                reference(m.get("join_ref"))?,
                reference(m.get("ref"))?,
                m.remove("topic"),
                m.remove("event"),
                m.remove("payload"),
            ),
            (Vsn::V2, Value::Array(a)) if a.len() == 5 => {
                let mut a = a.into_iter();
                let join_ref = reference(a.next().as_ref())?;
                let reference = reference(a.next().as_ref())?;
                (join_ref, reference, a.next(), a.next(), a.next())
            }
            (Vsn::V1, _) => return Err(Malformed("a message must be a JSON object")),
            (Vsn::V2, _) => return Err(Malformed("a message must be an array of five")),
        };
        let Some(Value::String(topic)) = topic else {
            return Err(Malformed("topic must be a string"));
        };
        let Some(Value::String(event)) = event else {
            return Err(Malformed("event must be a string"));
        };
        let payload = match payload {
            Some(p @ Value::Object(_)) => p,
            None | Some(Value::Null) => json!({}),
            Some(_) => return Err(Malformed("payload must be an object")),
        };
        Ok(Self {
            join_ref,
            reference,
            topic,
            event,
            payload,
        })
    }

    /// Reads a binary frame of the 2.0.0 serializer: a user broadcast
    /// push (kind 3: join ref, ref, topic, event and metadata lengths, the
    /// payload's encoding, then those fields and the payload), as
    /// realtime-js sends every broadcast. Only JSON payloads are taken.
    pub fn decode_binary(bytes: &[u8]) -> Result<Self, Malformed> {
        const HEADER: usize = 7;
        if bytes.len() < HEADER || bytes[0] != 3 {
            return Err(Malformed("a binary message must be a user broadcast push"));
        }
        let lengths = [bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]].map(usize::from);
        if bytes[6] != 1 {
            return Err(Malformed("binary broadcast payloads are not supported"));
        }
        let mut offset = HEADER;
        let mut fields = Vec::with_capacity(5);
        for len in lengths {
            let field = bytes.get(offset..offset + len).ok_or(Malformed(
                "a binary message is shorter than its header says",
            ))?;
            fields.push(std::str::from_utf8(field).map_err(|_| Malformed("a field is not UTF-8"))?);
            offset += len;
        }
        let payload: Value = serde_json::from_slice(&bytes[offset..])
            .map_err(|_| Malformed("the payload is not JSON"))?;
        let optional = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Self {
            join_ref: optional(fields[0]),
            reference: optional(fields[1]),
            topic: fields[2].to_owned(),
            event: "broadcast".into(),
            payload: json!({"type": "broadcast", "event": fields[3], "payload": payload}),
        })
    }

    /// Writes the frame in `vsn`'s form.
    pub fn encode(&self, vsn: Vsn) -> String {
        match vsn {
            Vsn::V1 => json!({
                "join_ref": self.join_ref,
                "ref": self.reference,
                "topic": self.topic,
                "event": self.event,
                "payload": self.payload,
            })
            .to_string(),
            Vsn::V2 => json!([
                self.join_ref,
                self.reference,
                self.topic,
                self.event,
                self.payload
            ])
            .to_string(),
        }
    }

    /// A reply to this frame: `phx_reply` with `status` and `response`.
    pub fn reply(&self, status: &str, response: Value) -> Frame {
        Frame {
            join_ref: self.join_ref.clone(),
            reference: self.reference.clone(),
            topic: self.topic.clone(),
            event: "phx_reply".into(),
            payload: json!({ "status": status, "response": response }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_serializers_round_trip() {
        let frame = Frame {
            join_ref: Some("1".into()),
            reference: Some("2".into()),
            topic: "realtime:room".into(),
            event: "broadcast".into(),
            payload: json!({"a": 1}),
        };
        for vsn in [Vsn::V1, Vsn::V2] {
            assert_eq!(Frame::decode(&frame.encode(vsn), vsn).unwrap(), frame);
        }
        assert_eq!(
            frame.encode(Vsn::V2),
            r#"["1","2","realtime:room","broadcast",{"a":1}]"#
        );
    }

    #[test]
    fn binary_broadcast_pushes_decode() {
        let mut b = vec![3u8, 1, 1, 6, 3, 0, 1];
        b.extend_from_slice(b"12topic1msg");
        b.extend_from_slice(br#"{"from":"js"}"#);
        let f = Frame::decode_binary(&b).unwrap();
        assert_eq!(
            (f.join_ref.as_deref(), f.reference.as_deref()),
            (Some("1"), Some("2"))
        );
        assert_eq!(
            (f.topic.as_str(), f.event.as_str()),
            ("topic1", "broadcast")
        );
        assert_eq!(
            f.payload,
            json!({"type": "broadcast", "event": "msg", "payload": {"from": "js"}})
        );
        assert!(Frame::decode_binary(&b[..9]).is_err());
        assert!(Frame::decode_binary(&[4, 0, 0, 0, 0, 0, 1]).is_err());
        let mut raw = b.clone();
        raw[6] = 0;
        assert!(Frame::decode_binary(&raw).is_err());
    }

    #[test]
    fn bad_frames_are_named() {
        for (text, vsn) in [
            ("nope", Vsn::V1),
            ("[1,2,3]", Vsn::V2),
            (r#"{"topic": 1, "event": "x"}"#, Vsn::V1),
            (r#"{"topic": "t", "event": "x", "payload": [1]}"#, Vsn::V1),
            (r#"[null, {}, "t", "e", {}]"#, Vsn::V2),
            (r#"["1","2","t","e",{}]"#, Vsn::V1),
        ] {
            assert!(Frame::decode(text, vsn).is_err(), "{text}");
        }
        let numeric = Frame::decode(r#"[null, 7, "phoenix", "heartbeat", {}]"#, Vsn::V2).unwrap();
        assert_eq!(numeric.reference.as_deref(), Some("7"));
        assert_eq!(Vsn::parse(Some("3.0.0")), None);
    }
}
