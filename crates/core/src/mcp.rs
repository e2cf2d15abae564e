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

/// Reads the request body leniently: a body that is not a JSON object of this shape peeks
/// as empty (no method), and goes on to rmcp, which answers it with the proper JSON-RPC
/// error. Nesting is bounded by serde_json's default recursion limit (128).
pub fn peek(bytes: &[u8]) -> Peek {
    serde_json::from_slice(bytes).unwrap_or_default()
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
