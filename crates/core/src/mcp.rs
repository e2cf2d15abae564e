//! The few fields of an MCP (JSON-RPC) request that the server's gate reads before rmcp
//! parses the body: the method decides the scope check and whether the call is billable,
//! the tool name picks a per-tool limit, and the id lets a refusal answer in kind.

use serde::Deserialize;
use serde_json::Value;

/// The parts of a JSON-RPC message the gate looks at.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Peek {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<PeekParams>,
    #[serde(default)]
    pub id: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PeekParams {
    #[serde(default)]
    pub name: Option<String>,
}

impl Peek {
    /// The tool a `tools/call` names (any method's `params.name`, in fact).
    pub fn tool(&self) -> Option<&str> {
        self.params.as_ref().and_then(|p| p.name.as_deref())
    }
}

/// Reads the request body leniently: a body that is not a JSON object peeks as empty (no
/// method), and goes on to rmcp, which answers it with the proper JSON-RPC error. Nesting
/// is bounded by serde_json's default recursion limit (128).
///
/// The typed read is stricter than rmcp: a repeated key (`"name"` twice in `params`, rmcp
/// takes the last) or a `params.name` that is not a string fails it, yet rmcp may still run
/// the call. Such a body used to peek as empty, and skipped the gate's scope check and rate
/// limits. It is now read as plain JSON instead, as rmcp reads it: the last value of a
/// repeated key, the name only when it is a string.
pub fn peek(bytes: &[u8]) -> Peek {
    if let Ok(peek) = serde_json::from_slice::<Peek>(bytes) {
        return peek;
    }
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(bytes) else {
        return Peek::default();
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    Peek {
        method: text(message.get("method")),
        params: match message.get("params") {
            Some(Value::Object(p)) => Some(PeekParams {
                name: text(p.get("name")),
            }),
            _ => None,
        },
        id: message.remove("id").filter(|id| !id.is_null()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_method_tool_and_id() {
        let p = peek(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#);
        assert_eq!(p.method.as_deref(), Some("tools/call"));
        assert_eq!(p.tool(), Some("whoami"));
        assert_eq!(p.id, Some(Value::from(7)));
    }

    /// rmcp runs these (checked against rmcp 3.9); the gate must see their method and tool.
    #[test]
    fn bodies_the_typed_read_refuses_still_name_their_method() {
        let cases: [(&[u8], &str, Option<&str>); 4] = [
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b","arguments":{}}}"#,
                "tools/call",
                Some("b"),
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"cairn://x","name":7}}"#,
                "resources/read",
                None,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","name":"q"}}"#,
                "prompts/get",
                Some("q"),
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":{}}}"#,
                "tools/list",
                None,
            ),
        ];
        for (body, method, tool) in cases {
            let p = peek(body);
            assert_eq!((p.method.as_deref(), p.tool()), (Some(method), tool));
            assert_eq!(p.id, Some(Value::from(1)));
        }
    }

    #[test]
    fn anything_else_peeks_as_empty() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"{\"method\":5}",
            b"{} trailing",
            deep.as_bytes(),
        ] {
            assert_eq!(peek(body), Peek::default());
        }
    }
}
