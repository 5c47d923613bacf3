"""A refund agent built on the A2A reference SDK (a2a-sdk, protocol 1.0,
JSON-RPC binding), for casebridge's interop test (tests/tests/a2a.rs).

    python a2a_agent.py PORT LOG_FILE TOKEN

It serves its agent card at /.well-known/agent-card.json (naming the
JSON-RPC interface and HTTP bearer authentication as required) and JSON-RPC
at /a2a, refuses requests without `Authorization: Bearer TOKEN`, and writes one
JSON line per message it receives to LOG_FILE (the task and context ids it
saw, the text and data parts, the extensions asked for), so the test can
check what casebridge sent. What it answers, by the customer's text:

- a new task mentioning "refund": input required, "Which order was it, and
  how much did you pay?" (asked for review when the text says "review");
- the customer's reply on that task: an artifact with the refund, completed;
- "close": completed with the case extension's closeCase flag;
- "fail": failed, with a reason;
- anything else: completed without an artifact.
"""

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse

from a2a.helpers.proto_helpers import (
    get_data_parts,
    get_text_parts,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    Role,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    TaskState,
)

CASE_EXTENSION = "urn:casebridge:a2a:case:v1"


class RefundAgent(AgentExecutor):
    def __init__(self, log_path: str):
        self.log_path = log_path

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        text = "\n".join(get_text_parts(message.parts)) if message else ""
        continuing = context.current_task is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(
                json.dumps(
                    {
                        "taskId": context.task_id,
                        "contextId": context.context_id,
                        "continuing": continuing,
                        "messageTaskId": message.task_id if message else None,
                        "text": text,
                        "data": get_data_parts(message.parts) if message else [],
                        "extensions": sorted(context.requested_extensions),
                    }
                )
                + "\n"
            )
        if not continuing:
            await event_queue.enqueue_event(new_task_from_user_message(message))
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        lowered = text.lower()

        def agent_says(words: str):
            return new_text_message(words, role=Role.ROLE_AGENT, context_id=context.context_id, task_id=context.task_id)

        if continuing:
            await updater.add_artifact([new_text_part("We have refunded $42.50 to your card.")], name="answer")
            await updater.complete()
        elif "close" in lowered:
            await updater.add_artifact(
                [new_text_part("Your account is closed as you asked.")],
                name="answer",
                metadata={CASE_EXTENSION: {"closeCase": True}},
            )
            await updater.complete()
        elif "fail" in lowered:
            await updater.failed(agent_says("The order system does not know this order."))
        elif "refund" in lowered:
            question = agent_says("Which order was it, and how much did you pay?")
            if "review" in lowered:
                question.metadata.update({CASE_EXTENSION: {"needsReview": True}})
            await updater.update_status(TaskState.TASK_STATE_INPUT_REQUIRED, message=question)
        else:
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


class BearerOnly(BaseHTTPMiddleware):
    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request, call_next):
        if request.url.path.startswith("/.well-known/"):
            return await call_next(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return await call_next(request)


def main() -> None:
    port, log_path, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    base = f"http://127.0.0.1:{port}"
    card = AgentCard(
        name="refund-agent",
        description="Refunds for broken or missing orders (casebridge interop test).",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"{base}/a2a", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="refund", name="Refund", description="Refunds an order.", tags=["refund"])],
        security_schemes={"bearer": SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer"))},
        security_requirements=[SecurityRequirement(schemes={"bearer": StringList()})],
    )
    handler = DefaultRequestHandler(agent_executor=RefundAgent(log_path), task_store=InMemoryTaskStore(), agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/a2a")
    app = Starlette(routes=routes)
    app.add_middleware(BearerOnly, token=token)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
