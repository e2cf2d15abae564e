//! What happens to a verified inbound event: a source's handlers, chosen by event type.
//! The first handler whose pattern matches runs; with none, the event is only stored.
//! Handlers are data (stored with the source as JSON), so this module only validates them,
//! picks one and reads the fields it names out of a payload.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::ValidationError;

/// At most this many handlers per source.
pub const MAX_HANDLERS: usize = 16;

/// One handler: an event-type pattern and what to do. (Unknown fields are refused by the
/// action's variant: `deny_unknown_fields` cannot sit beside `flatten`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handler {
    /// An event type (`page.updated`, GitHub's `push`), a prefix ending in `*`, or `*`.
    pub event_type: String,
    #[serde(flatten)]
    pub action: HandlerAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum HandlerAction {
    /// Store only (explicit, e.g. to stop a later catch-all from matching).
    Store {},
    /// Ingest (or replace) a document in a knowledge base of the tenant. Fields are JSON
    /// pointers into the payload (`/data/id`).
    KbIngest {
        kb: String,
        source_id: String,
        content: String,
        #[serde(default)]
        title: Option<String>,
        /// A pointer to the content type, or absent for `text/markdown`.
        #[serde(default)]
        content_type: Option<String>,
    },
}

impl HandlerAction {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Store {} => "store",
            Self::KbIngest { .. } => "kb_ingest",
        }
    }
}

impl Handler {
    pub fn matches(&self, event_type: Option<&str>) -> bool {
        let Some(t) = event_type else {
            return self.event_type == "*";
        };
        match self.event_type.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == self.event_type,
        }
    }
}

fn invalid(msg: impl Into<String>) -> ValidationError {
    ValidationError::new("handlers", msg)
}

fn check_pointer(field: &str, p: &str) -> Result<(), ValidationError> {
    if p.is_empty() || (p.starts_with('/') && p.len() <= 256 && !p.chars().any(char::is_control)) {
        Ok(())
    } else {
        Err(invalid(format!("{field} must be a JSON pointer like /data/id")))
    }
}

/// Refuses handler lists a delivery could never run correctly.
pub fn validate(handlers: &[Handler]) -> Result<(), ValidationError> {
    if handlers.len() > MAX_HANDLERS {
        return Err(invalid(format!("at most {MAX_HANDLERS}")));
    }
    for h in handlers {
        let body = h.event_type.strip_suffix('*').unwrap_or(&h.event_type);
        let ok = (1..=128).contains(&h.event_type.len())
            && !body.contains('*')
            && h.event_type.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(invalid(
                "event_type is a type like page.updated, a prefix like page.*, or *",
            ));
        }
        if let HandlerAction::KbIngest {
            kb,
            source_id,
            content,
            title,
            content_type,
        } = &h.action
        {
            if kb.is_empty() || kb.len() > 63 {
                return Err(invalid("kb names a knowledge base"));
            }
            check_pointer("source_id", source_id)?;
            check_pointer("content", content)?;
            for p in [title, content_type].into_iter().flatten() {
                check_pointer("title/content_type", p)?;
            }
        }
    }
    Ok(())
}

/// The handler for an event type, if any.
pub fn pick<'a>(handlers: &'a [Handler], event_type: Option<&str>) -> Option<&'a Handler> {
    handlers.iter().find(|h| h.matches(event_type))
}

/// A string (or number, as text) at `pointer` in `payload`.
pub fn field(payload: &Value, pointer: &str) -> Option<String> {
    match payload.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(pattern: &str) -> Handler {
        Handler {
            event_type: pattern.into(),
            action: HandlerAction::KbIngest {
                kb: "docs".into(),
                source_id: "/data/id".into(),
                content: "/data/body".into(),
                title: None,
                content_type: None,
            },
        }
    }

    #[test]
    fn first_matching_handler_wins() {
        let hs = vec![
            Handler {
                event_type: "page.draft".into(),
                action: HandlerAction::Store {},
            },
            ingest("page.*"),
        ];
        assert_eq!(pick(&hs, Some("page.draft")).map(|h| h.action.name()), Some("store"));
        assert_eq!(
            pick(&hs, Some("page.updated")).map(|h| h.action.name()),
            Some("kb_ingest")
        );
        assert!(pick(&hs, Some("user.created")).is_none());
        assert!(pick(&hs, None).is_none());
        assert!(pick(&[ingest("*")], None).is_some());
    }

    #[test]
    fn parses_from_json_and_refuses_bad_lists() {
        let parsed: Vec<Handler> = serde_json::from_value(serde_json::json!([
            {"event_type": "page.updated", "action": "kb_ingest", "kb": "docs",
             "source_id": "/data/id", "content": "/data/body", "title": "/data/title"}
        ]))
        .unwrap();
        assert!(validate(&parsed).is_ok());
        for bad in [
            serde_json::json!({"event_type": "x", "action": "shell", "cmd": "rm"}),
            serde_json::json!({"event_type": "x", "action": "kb_ingest", "kb": "d", "source_id": "/i",
                "content": "/c", "extra": 1}),
            serde_json::json!({"event_type": "x", "action": "store", "extra": 1}),
            serde_json::json!({"action": "store"}),
        ] {
            assert!(serde_json::from_value::<Handler>(bad.clone()).is_err(), "{bad}");
        }
        for bad in [ingest(""), ingest("a*b"), ingest("sp ace")] {
            assert!(validate(&[bad]).is_err());
        }
        let mut bad_ptr = ingest("x");
        if let HandlerAction::KbIngest { content, .. } = &mut bad_ptr.action {
            *content = "data.body".into();
        }
        assert!(validate(&[bad_ptr]).is_err());
        assert!(validate(&vec![ingest("x"); MAX_HANDLERS + 1]).is_err());
    }

    #[test]
    fn reads_fields_by_pointer() {
        let v = serde_json::json!({"data": {"id": 42, "body": "# Hi", "list": []}});
        assert_eq!(field(&v, "/data/id").as_deref(), Some("42"));
        assert_eq!(field(&v, "/data/body").as_deref(), Some("# Hi"));
        assert_eq!(field(&v, "/data/list"), None);
        assert_eq!(field(&v, "/nope"), None);
    }
}
