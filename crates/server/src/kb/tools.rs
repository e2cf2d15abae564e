//! The knowledge base over MCP: tools `search_knowledge`, `get_document` and
//! `ingest_document` (scope `kb:write`), documents as resources
//! (`cairn://kb/{kb}/documents/{id}`) and the prompt `answer_with_sources`.

use cairn_core::api_key::Scope;
use cairn_core::audit::Actor;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    JsonObject, Prompt, PromptArgument, PromptMessage, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate, Role, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{json, Value};

use super::ingest::IngestInput;
use super::search::{self, Mode, SearchRequest, SearchResponse};
use super::KbError;
use crate::error::{ApiError, Code};
use crate::mcp::catalog::{BoxFuture, Provider, ToolCall};
use crate::mcp::McpCaller;
use crate::service::kb::{get_document, ingest_into, resolve_kb, DEFAULT_KB};
use crate::state::{AppState, Ctx};

pub struct KnowledgeTools;

const TOOLS: [&str; 3] = ["search_knowledge", "get_document", "ingest_document"];
/// Documents listed as resources (the template reaches the others).
const RESOURCE_LIST_LIMIT: i64 = 200;

fn schema(v: Value) -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(rmcp::model::object(v))
}

fn failure(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message.into())]).into()
}

/// A client mistake becomes a tool error the model can read; a server fault stays an
/// internal error with a generic text.
fn refusal(e: KbError) -> Result<CallToolResponse, ErrorData> {
    let api = ApiError::from(e);
    match api.code {
        Code::Internal | Code::ServiceUnavailable => Err(ErrorData::internal_error(api.message, None)),
        code => Ok(failure(format!("{} ({})", api.message, code.as_str()))),
    }
}

fn str_arg<'a>(args: &'a JsonObject, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn list_arg(args: &JsonObject, name: &str) -> Vec<String> {
    args.get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The hits as text an assistant can quote from, each with its citation.
pub fn render(found: &SearchResponse) -> String {
    if found.results.is_empty() {
        return format!("No results in knowledge base {}.", found.kb);
    }
    let mut out = String::new();
    for (i, h) in found.results.iter().enumerate() {
        // The top heading usually repeats the title.
        let headings = match h.heading_path.split_first() {
            Some((first, rest)) if *first == h.title => rest,
            _ => &h.heading_path[..],
        };
        let path: String = headings.iter().map(|p| format!(" › {p}")).collect();
        out.push_str(&format!(
            "[{}] {}{} (source: {}, document {}, bytes {}–{}, score {:.4})\n{}\n\n",
            i + 1,
            h.title,
            path,
            h.source_id,
            h.document_id,
            h.start,
            h.end,
            h.score,
            h.text
        ));
    }
    out
}

fn ctx_for(app: &AppState, caller: &McpCaller) -> Ctx {
    Ctx {
        state: app.clone(),
        actor: caller.user.map_or(Actor::System, Actor::User),
        meta: crate::extract::RequestMeta {
            request_id: None,
            source_ip: None,
            user_agent: Some("mcp".into()),
        },
    }
}

async fn search_tool(call: &ToolCall<'_>) -> Result<CallToolResponse, ErrorData> {
    let args = &call.arguments;
    let Some(query) = str_arg(args, "query") else {
        return Ok(failure("query is required"));
    };
    let mode = match str_arg(args, "mode").unwrap_or("hybrid") {
        "hybrid" => Mode::Hybrid,
        "lexical" => Mode::Lexical,
        "vector" => Mode::Vector,
        _ => return Ok(failure("mode: hybrid, lexical or vector")),
    };
    let k = match args.get("k") {
        None => 5,
        Some(v) => match v.as_u64().and_then(|k| usize::try_from(k).ok()) {
            Some(k) => k,
            None => return Ok(failure(format!("k: 1 to {}", search::MAX_K))),
        },
    };
    let req = SearchRequest {
        query: query.to_owned(),
        k,
        mode,
        tags: list_arg(args, "tags"),
        source_ids: list_arg(args, "source_ids"),
    };
    let tenant = call.caller.tenant.id;
    let kb = match resolve_kb(call.app, tenant, str_arg(args, "kb").unwrap_or(DEFAULT_KB)).await {
        Ok(kb) => kb,
        Err(e) => return refusal(e),
    };
    match search::search(call.app, tenant, &kb, &req).await {
        Ok(found) => {
            let mut result = CallToolResult::structured(json!(found));
            result.content = vec![ContentBlock::text(render(&found))];
            Ok(result.into())
        }
        Err(e) => refusal(e),
    }
}

async fn get_document_tool(call: &ToolCall<'_>) -> Result<CallToolResponse, ErrorData> {
    let args = &call.arguments;
    let Some(id) = str_arg(args, "document_id") else {
        return Ok(failure("document_id is required"));
    };
    let tenant = call.caller.tenant.id;
    let found = match resolve_kb(call.app, tenant, str_arg(args, "kb").unwrap_or(DEFAULT_KB)).await {
        Ok(kb) => get_document(call.app, tenant, &kb, id).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(doc) => {
            let mut result = CallToolResult::structured(json!(doc));
            result.content = vec![ContentBlock::text(format!(
                "# {}\n(source: {}, document {})\n\n{}",
                doc.document.title, doc.document.source_id, doc.document.id, doc.text
            ))];
            Ok(result.into())
        }
        Err(e) => refusal(e),
    }
}

async fn ingest_tool(call: &ToolCall<'_>) -> Result<CallToolResponse, ErrorData> {
    if !call.caller.has(Scope::KbWrite) {
        return Ok(failure("ingest_document needs the kb:write scope"));
    }
    let args = &call.arguments;
    let (Some(source_id), Some(content)) = (str_arg(args, "source_id"), str_arg(args, "content")) else {
        return Ok(failure("source_id and content are required"));
    };
    let tags = list_arg(args, "tags");
    let input = IngestInput {
        source_id,
        title: str_arg(args, "title"),
        content_type: str_arg(args, "content_type").unwrap_or("text/markdown"),
        content: content.as_bytes(),
        tags: &tags,
    };
    let tenant = &call.caller.tenant;
    let kb = match resolve_kb(call.app, tenant.id, str_arg(args, "kb").unwrap_or(DEFAULT_KB)).await {
        Ok(kb) => kb,
        Err(e) => return refusal(e),
    };
    let ctx = ctx_for(call.app, call.caller);
    match ingest_into(call.app, tenant, &kb, &ctx, input).await {
        Ok(done) => Ok(CallToolResult::structured(json!(done)).into()),
        Err(e) if matches!(e.code, Code::Internal | Code::ServiceUnavailable) => {
            Err(ErrorData::internal_error(e.message, None))
        }
        Err(e) => Ok(failure(format!("{} ({})", e.message, e.code.as_str()))),
    }
}

fn parse_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("cairn://kb/")?;
    let (kb, id) = rest.split_once("/documents/")?;
    (!kb.is_empty() && !id.is_empty() && !id.contains('/')).then_some((kb, id))
}

impl Provider for KnowledgeTools {
    fn tools(&self) -> Vec<Tool> {
        let kb = json!({ "type": "string", "description": "Knowledge base name (default: default)" });
        vec![
            Tool::new(
                "search_knowledge",
                "Searches the workspace's knowledge base (keywords and meaning combined) and returns the most relevant passages, each with its document, section and position for citing.",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "query": { "type": "string", "description": "What to look for, in natural language" },
                        "k": { "type": "integer", "minimum": 1, "maximum": search::MAX_K, "default": 5 },
                        "kb": kb,
                        "mode": { "type": "string", "enum": ["hybrid", "lexical", "vector"], "default": "hybrid" },
                        "tags": { "type": "array", "items": { "type": "string" }, "description": "Only documents with all these tags" },
                        "source_ids": { "type": "array", "items": { "type": "string" }, "description": "Only these documents" }
                    },
                    "required": ["query"]
                })),
            ),
            Tool::new(
                "get_document",
                "Returns one knowledge-base document in full (by the document id a search result gave).",
                schema(json!({
                    "type": "object",
                    "properties": { "document_id": { "type": "string" }, "kb": kb },
                    "required": ["document_id"]
                })),
            ),
            Tool::new(
                "ingest_document",
                "Adds or replaces a document in the knowledge base (needs the kb:write scope).",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "source_id": { "type": "string", "description": "Your identifier; ingesting it again replaces the document" },
                        "content": { "type": "string" },
                        "title": { "type": "string" },
                        "content_type": { "type": "string", "enum": ["text/plain", "text/markdown", "text/html"], "default": "text/markdown" },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "kb": kb
                    },
                    "required": ["source_id", "content"]
                })),
            ),
        ]
    }

    fn call_tool<'a>(
        &'a self,
        name: &str,
        call: ToolCall<'a>,
    ) -> Option<BoxFuture<'a, Result<CallToolResponse, ErrorData>>> {
        let name = TOOLS.iter().find(|t| **t == name)?;
        Some(Box::pin(async move {
            match *name {
                "search_knowledge" => search_tool(&call).await,
                "get_document" => get_document_tool(&call).await,
                _ => ingest_tool(&call).await,
            }
        }))
    }

    fn resources<'a>(
        &'a self,
        app: &'a AppState,
        caller: &'a McpCaller,
    ) -> BoxFuture<'a, Result<Vec<Resource>, ErrorData>> {
        Box::pin(async move {
            let tenant = caller.tenant.id;
            let internal = |e: cairn_store::StoreError| ErrorData::internal_error(ApiError::from(e).message, None);
            let mut out = Vec::new();
            for kb in app.store.list_knowledge_bases(tenant).await.map_err(internal)? {
                let docs = app
                    .store
                    .list_documents(tenant, kb.id, RESOURCE_LIST_LIMIT, 0)
                    .await
                    .map_err(internal)?;
                out.extend(docs.into_iter().map(|d| {
                    Resource::new(format!("cairn://kb/{}/documents/{}", kb.name, d.id), d.title.clone())
                        .with_description(format!("{} ({})", d.source_id, kb.name))
                        .with_mime_type("text/markdown")
                }));
            }
            Ok(out)
        })
    }

    fn resource_templates(&self) -> Vec<ResourceTemplate> {
        vec![
            ResourceTemplate::new("cairn://kb/{kb}/documents/{id}", "Knowledge-base document")
                .with_description("A document of the workspace's knowledge base, by base name and document id")
                .with_mime_type("text/markdown"),
        ]
    }

    fn read_resource<'a>(
        &'a self,
        app: &'a AppState,
        caller: &'a McpCaller,
        uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<ReadResourceResult, ErrorData>>> {
        let (kb, id) = parse_uri(uri)?;
        Some(Box::pin(async move {
            let tenant = caller.tenant.id;
            let not_found =
                || ErrorData::resource_not_found(format!("Resource not found: {uri}"), Some(json!({ "uri": uri })));
            let doc = match resolve_kb(app, tenant, kb).await {
                Ok(kb) => get_document(app, tenant, &kb, id).await,
                Err(e) => Err(e),
            };
            match doc {
                Ok(d) => Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(d.text, uri).with_mime_type("text/markdown")
                ])),
                Err(KbError::UnknownKb(_) | KbError::UnknownDocument) => Err(not_found()),
                Err(e) => Err(ErrorData::internal_error(ApiError::from(e).message, None)),
            }
        }))
    }

    fn prompts(&self) -> Vec<Prompt> {
        vec![Prompt::new(
            "answer_with_sources",
            Some("Answers a question from the knowledge base, citing the passages used"),
            Some(vec![
                PromptArgument::new("question")
                    .with_description("The question")
                    .with_required(true),
                PromptArgument::new("kb").with_description("Knowledge base (default: default)"),
            ]),
        )]
    }

    fn get_prompt<'a>(
        &'a self,
        app: &'a AppState,
        caller: &'a McpCaller,
        request: &'a GetPromptRequestParams,
        _ctx: &'a RequestContext<RoleServer>,
    ) -> Option<BoxFuture<'a, Result<GetPromptResponse, ErrorData>>> {
        (request.name == "answer_with_sources").then(|| -> BoxFuture<'a, _> {
            Box::pin(async move {
                let args = request.arguments.clone().unwrap_or_default();
                let question = args
                    .get("question")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                if question.is_empty() {
                    return Err(ErrorData::invalid_params("question is required", None));
                }
                let name = args.get("kb").and_then(Value::as_str).unwrap_or(DEFAULT_KB).to_owned();
                let tenant = caller.tenant.id;
                let req = SearchRequest {
                    query: question.clone(),
                    k: 5,
                    mode: Mode::Hybrid,
                    tags: Vec::new(),
                    source_ids: Vec::new(),
                };
                let found = match resolve_kb(app, tenant, &name).await {
                    Ok(kb) => search::search(app, tenant, &kb, &req).await,
                    Err(e) => Err(e),
                };
                let found = found.map_err(|e| {
                    let api = ApiError::from(e);
                    ErrorData::invalid_params(format!("{} ({})", api.message, api.code.as_str()), None)
                })?;
                let text = format!(
                    "Answer the question using only the numbered sources below. Cite sources by number, e.g. [1]. \
                     If they do not contain the answer, say so.\n\nSources:\n\n{}Question: {question}",
                    render(&found)
                );
                Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                    .with_description("Question with retrieved sources")
                    .into())
            })
        })
    }
}
