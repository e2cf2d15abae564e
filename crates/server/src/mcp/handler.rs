//! The rmcp `ServerHandler` of Cairn: resolves the caller, then serves the tenant's
//! catalogue of providers. One instance per MCP session (HTTP) or per process (stdio).

#![allow(deprecated)] // logging/setLevel and resources/subscribe are deprecated in 2026-07-28 but served for older revisions.

use std::sync::{Arc, OnceLock};

use std::time::Instant;

use cairn_core::usage::UsageOutcome;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeRequestParams, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::catalog::{providers_for, Provider, ToolCall};
use super::McpCaller;
use crate::state::AppState;

#[derive(Clone)]
pub struct CairnMcp {
    app: AppState,
    /// Set for stdio, where the CLI decides who the caller is.
    fixed: Option<McpCaller>,
    /// The tenant and key that opened this session; later requests must match.
    bound: Arc<OnceLock<super::Principal>>,
}

impl CairnMcp {
    /// A handler for HTTP: the caller comes from the gate, per request.
    pub fn http(app: AppState) -> Self {
        Self {
            app,
            fixed: None,
            bound: Arc::new(OnceLock::new()),
        }
    }

    /// A handler for stdio: one fixed caller.
    pub fn stdio(app: AppState, caller: McpCaller) -> Self {
        Self {
            app,
            fixed: Some(caller),
            bound: Arc::new(OnceLock::new()),
        }
    }

    pub fn app(&self) -> &AppState {
        &self.app
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<McpCaller, ErrorData> {
        if let Some(caller) = &self.fixed {
            return Ok(caller.clone());
        }
        let caller = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>())
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))?;
        let principal = caller.principal();
        if *self.bound.get_or_init(|| principal) != principal {
            return Err(ErrorData::invalid_request(
                "this session belongs to another client",
                None,
            ));
        }
        Ok(caller)
    }

    fn providers(&self, ctx: &RequestContext<RoleServer>) -> Result<(McpCaller, Vec<Arc<dyn Provider>>), ErrorData> {
        let caller = self.caller(ctx)?;
        let providers = providers_for(&caller);
        Ok((caller, providers))
    }
}

/// What the handler knows of one request, for its usage event.
struct Meter {
    started: Instant,
    request_bytes: usize,
}

impl CairnMcp {
    fn meter_start(ctx: &RequestContext<RoleServer>) -> Meter {
        let facts = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<super::gate::RequestFacts>());
        match facts {
            Some(f) => Meter {
                started: f.started,
                request_bytes: f.request_bytes,
            },
            None => Meter {
                started: Instant::now(),
                request_bytes: 0,
            },
        }
    }

    /// Records one usage event for a request that reached the handler.
    async fn meter(&self, meter: Meter, caller: &McpCaller, method: &str, tool: Option<&str>, sized: Sized) {
        let (outcome, response_bytes) = sized;
        let tool = tool.map(str::to_owned);
        let event = caller.usage(
            method,
            tool,
            outcome,
            meter.started,
            (meter.request_bytes, response_bytes),
        );
        self.app.usage.record(event).await;
    }
}

/// A result's usage outcome and encoded size.
type Sized = (UsageOutcome, usize);

/// Counts the bytes of a JSON encoding without building it.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn sized<T: serde::Serialize>(result: &Result<T, ErrorData>) -> Sized {
    match result {
        Ok(r) => (UsageOutcome::Ok, encoded_len(r)),
        Err(e) => (UsageOutcome::Error, encoded_len(e)),
    }
}

fn sized_call(result: &Result<CallToolResponse, ErrorData>) -> Sized {
    match result {
        Ok(CallToolResponse::Complete(c)) if c.is_error == Some(true) => (UsageOutcome::ToolError, encoded_len(c)),
        Ok(CallToolResponse::Complete(c)) => (UsageOutcome::Ok, encoded_len(c)),
        Ok(CallToolResponse::InputRequired(r)) => (UsageOutcome::Ok, encoded_len(r)),
        Ok(CallToolResponse::Task(t)) => (UsageOutcome::Ok, encoded_len(t)),
        Ok(_) => (UsageOutcome::Ok, 0),
        Err(e) => (UsageOutcome::Error, encoded_len(e)),
    }
}

fn sized_prompt(result: &Result<GetPromptResponse, ErrorData>) -> Sized {
    match result {
        Ok(GetPromptResponse::Complete(p)) => (UsageOutcome::Ok, encoded_len(p)),
        Ok(GetPromptResponse::InputRequired(r)) => (UsageOutcome::Ok, encoded_len(r)),
        Ok(_) => (UsageOutcome::Ok, 0),
        Err(e) => (UsageOutcome::Error, encoded_len(e)),
    }
}

impl ServerHandler for CairnMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_completions()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("cairn", env!("CARGO_PKG_VERSION")))
            .with_instructions("Cairn: this tenant's tools, knowledge and connected services.")
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let caller = self.caller(&ctx)?;
        ctx.peer.set_peer_info(request.clone());
        let result = self.negotiate_initialize(&request);
        self.meter(meter, &caller, "initialize", None, sized(&result)).await;
        result
    }

    async fn ping(&self, ctx: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let meter = Self::meter_start(&ctx);
        let caller = self.caller(&ctx)?;
        let result = Ok(rmcp::model::EmptyResult {});
        self.meter(meter, &caller, "ping", None, sized(&result)).await;
        result.map(|_| ())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // rmcp asks on every stateless tools/call, to validate SEP-2243 parameter headers
        // (only the fixtures declare any): build the list once.
        static TOOLS: std::sync::OnceLock<Vec<Tool>> = std::sync::OnceLock::new();
        let tools = TOOLS.get_or_init(|| {
            super::fixtures::Fixtures
                .tools()
                .into_iter()
                .chain(super::whoami::Whoami.tools())
                .collect()
        });
        tools.iter().find(|t| t.name == name).cloned()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let result =
            Ok(ListToolsResult::with_all_items(providers.iter().flat_map(|p| p.tools()).collect()).with_ttl_ms(60_000));
        self.meter(meter, &caller, "tools/list", None, sized(&result)).await;
        result
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let arguments = request.arguments.clone().unwrap_or_default();
        let mut outcome: Option<Result<CallToolResponse, ErrorData>> = None;
        for provider in &providers {
            let call = ToolCall {
                app: &self.app,
                caller: &caller,
                arguments: arguments.clone(),
                input_responses: request.input_responses.clone(),
                request_state: request.request_state.clone(),
                ctx: ctx.clone(),
            };
            if let Some(fut) = provider.call_tool(&request.name, call) {
                outcome = Some(fut.await);
                break;
            }
        }
        let result = outcome.unwrap_or_else(|| {
            Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", request.name),
                None,
            ))
        });
        self.meter(meter, &caller, "tools/call", Some(&request.name), sized_call(&result))
            .await;
        result
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let mut items = Vec::new();
        let mut failed = None;
        for p in &providers {
            match p.resources(&self.app, &caller).await {
                Ok(list) => items.extend(list),
                Err(e) => failed = Some(e),
            }
        }
        let result = match failed {
            Some(e) => Err(e),
            None => Ok(ListResourcesResult::with_all_items(items).with_ttl_ms(60_000)),
        };
        self.meter(meter, &caller, "resources/list", None, sized(&result)).await;
        result
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let result = Ok(ListResourceTemplatesResult::with_all_items(
            providers.iter().flat_map(|p| p.resource_templates()).collect(),
        )
        .with_ttl_ms(60_000));
        self.meter(meter, &caller, "resources/templates/list", None, sized(&result))
            .await;
        result
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let found = providers
            .iter()
            .find_map(|p| p.read_resource(&self.app, &caller, &request.uri));
        let found = match found {
            Some(fut) => Some(fut.await),
            None => None,
        };
        let result = found.unwrap_or_else(|| {
            Err(ErrorData::resource_not_found(
                format!("Resource not found: {}", request.uri),
                Some(serde_json::json!({ "uri": request.uri })),
            ))
        });
        let result = result.map(|r| r.with_ttl_ms(60_000));
        self.meter(meter, &caller, "resources/read", Some(&request.uri), sized(&result))
            .await;
        result.map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let result = Ok(
            ListPromptsResult::with_all_items(providers.iter().flat_map(|p| p.prompts()).collect()).with_ttl_ms(60_000),
        );
        self.meter(meter, &caller, "prompts/list", None, sized(&result)).await;
        result
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let found = providers
            .iter()
            .find_map(|p| p.get_prompt(&self.app, &caller, &request, &ctx));
        let found = match found {
            Some(fut) => Some(fut.await),
            None => None,
        };
        let result = found.unwrap_or_else(|| {
            Err(ErrorData::invalid_params(
                format!("Unknown prompt: {}", request.name),
                None,
            ))
        });
        self.meter(
            meter,
            &caller,
            "prompts/get",
            Some(&request.name),
            sized_prompt(&result),
        )
        .await;
        result
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let meter = Self::meter_start(&ctx);
        let (caller, providers) = self.providers(&ctx)?;
        let result = Ok(providers.iter().find_map(|p| p.complete(&request)).unwrap_or_default());
        self.meter(meter, &caller, "completion/complete", None, sized(&result))
            .await;
        result
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.caller(&ctx).map(|_| ())
    }

    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.caller(&ctx).map(|_| ())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.caller(&ctx).map(|_| ())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }
}
