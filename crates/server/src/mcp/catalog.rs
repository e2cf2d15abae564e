//! What a tenant's MCP endpoint offers, as a list of providers. A provider contributes
//! tools, resources and prompts; later subsystems (knowledge base, upstream REST and MCP
//! servers) add providers without touching the transport or the handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::model::{
    CallToolResponse, CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse, InputResponses,
    JsonObject, Prompt, ReadResourceResult, Resource, ResourceTemplate, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::McpCaller;
use crate::state::AppState;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One tool invocation.
pub struct ToolCall<'a> {
    pub app: &'a AppState,
    pub caller: &'a McpCaller,
    pub arguments: JsonObject,
    /// Answers to an earlier `input_required` result (2026-07-28 multi-round requests).
    pub input_responses: Option<InputResponses>,
    /// The opaque state returned with that result, echoed by the client.
    pub request_state: Option<String>,
    pub ctx: RequestContext<RoleServer>,
}

/// A source of tools, resources and prompts. Every method has an empty default.
pub trait Provider: Send + Sync {
    fn tools(&self) -> Vec<Tool> {
        Vec::new()
    }

    /// `None` if this provider has no tool called `name`.
    fn call_tool<'a>(
        &'a self,
        _name: &str,
        _call: ToolCall<'a>,
    ) -> Option<BoxFuture<'a, Result<CallToolResponse, ErrorData>>> {
        None
    }

    /// Resources are listed per caller (a tenant's documents, say), hence async.
    fn resources<'a>(
        &'a self,
        _app: &'a AppState,
        _caller: &'a McpCaller,
    ) -> BoxFuture<'a, Result<Vec<Resource>, ErrorData>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn resource_templates(&self) -> Vec<ResourceTemplate> {
        Vec::new()
    }

    /// `None` if no resource of this provider has `uri`.
    fn read_resource<'a>(
        &'a self,
        _app: &'a AppState,
        _caller: &'a McpCaller,
        _uri: &'a str,
    ) -> Option<BoxFuture<'a, Result<ReadResourceResult, ErrorData>>> {
        None
    }

    fn prompts(&self) -> Vec<Prompt> {
        Vec::new()
    }

    fn get_prompt<'a>(
        &'a self,
        _app: &'a AppState,
        _caller: &'a McpCaller,
        _request: &'a GetPromptRequestParams,
        _ctx: &'a RequestContext<RoleServer>,
    ) -> Option<BoxFuture<'a, Result<GetPromptResponse, ErrorData>>> {
        None
    }

    fn complete(&self, _request: &CompleteRequestParams) -> Option<CompleteResult> {
        None
    }
}

/// The providers serving one tenant. A conformance tenant serves exactly the suite's
/// fixtures and nothing else.
pub fn providers_for(caller: &McpCaller) -> Vec<Arc<dyn Provider>> {
    if caller.tenant.conformance_fixtures {
        return vec![Arc::new(super::fixtures::Fixtures)];
    }
    vec![
        Arc::new(super::whoami::Whoami),
        Arc::new(crate::connections::tool::ConnectionTools),
        Arc::new(crate::kb::tools::KnowledgeTools),
    ]
}
