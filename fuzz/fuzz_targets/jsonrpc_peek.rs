//! The MCP gate's look at a request body, `cairn_core::mcp::peek`, and serde_json's
//! recursion limit on deeply nested input.
//!
//! Input: a JSON-RPC body, e.g. `{"jsonrpc":"2.0","id":1,"method":"tools/call",...}`. Its
//! first two bytes and its length also pick a nesting depth (0–4 095) and a shape for a
//! generated document.
//!
//! Invariants: whenever the body is a JSON object (as `serde_json::Value` reads it: the last
//! of repeated keys, like rmcp), the method and tool the gate sees are that object's
//! `method` and `params.name`, so the gate's scope and rate-limit decisions are about the
//! call rmcp will dispatch (a repeated `params.name` once hid a `tools/call` from them); a
//! document nested 128 levels deep or more is refused with "recursion limit exceeded" (the
//! default limit is on: `unbounded_depth` must never be enabled), one of 127 is not, and
//! neither `Value` nor `peek` overflows the stack.
#![no_main]

use cairn_core::mcp::{peek, Peek};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let seen = peek(data);
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(obj)) => {
            assert_eq!(
                seen.method.as_deref(),
                obj.get("method").and_then(Value::as_str),
                "method"
            );
            let name = match obj.get("params") {
                Some(Value::Object(p)) => p.get("name").and_then(Value::as_str),
                // A derived struct also reads a sequence positionally: ["tool", …] (rmcp
                // refuses such params).
                Some(Value::Array(a)) => a.first().and_then(Value::as_str),
                _ => None,
            };
            if seen.tool().is_some() || !matches!(obj.get("params"), Some(Value::Array(_))) {
                assert_eq!(seen.tool(), name, "tool name");
            }
            assert_eq!(seen.id.as_ref(), obj.get("id").filter(|v| !v.is_null()), "id");
        }
        // The gate refuses a batch before it peeks; a struct would read an array positionally.
        Ok(Value::Array(_)) => {}
        Ok(_) => assert_eq!(seen, Peek::default()),
        // What plain JSON refuses (deep nesting inside an ignored member, say) the typed read
        // may still see; rmcp refuses it too, and the gate checks the method it saw anyway.
        Err(_) => {}
    }

    // Deep nesting: the parser must refuse it, not recurse until the stack runs out.
    let depth = match data {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])) % 4_096,
        _ => data.len(),
    };
    let (open, close, wrap) = match data.len() % 3 {
        0 => (r#"{"a":"#, "}", false),
        1 => ("[", "]", true),
        _ => ("[", "]", false),
    };
    let nested = format!("{}null{}", open.repeat(depth), close.repeat(depth));
    let doc = if wrap {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{nested}}}}}"#)
    } else {
        nested
    };
    let levels = depth + if wrap { 2 } else { 0 };
    // serde_json's limit of 128 counts the levels entered: 127 parse, 128 do not.
    match serde_json::from_slice::<Value>(doc.as_bytes()) {
        Ok(_) => assert!(levels < 128, "a document nested {levels} levels deep was accepted"),
        Err(e) if levels >= 128 => assert!(e.to_string().contains("recursion limit exceeded"), "{e}"),
        Err(e) => panic!("{levels} levels refused: {e}"),
    }
    // The gate skips what it does not need (`arguments`) without the limit, iteratively: it
    // still sees the method, and rmcp refuses the body later (its parse is limited).
    let seen = peek(doc.as_bytes());
    if wrap {
        assert_eq!((seen.method.as_deref(), seen.tool()), (Some("tools/call"), Some("t")));
    }
});
