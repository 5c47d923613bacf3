"""Drives casebridge's MCP server (POST /mcp) with the reference Python MCP
client (the `mcp` package, pinned in infra/local-stack.sh), for
tests/tests/mcp.rs.

Usage: python mcp_client.py '<json>' with the JSON
  {"url": ..., "agent": ..., "token": ..., "caseId": ...,
   "otherAgent": ..., "otherToken": ...}
Connects over Streamable HTTP with the agent's X-Casebridge-Agent and bearer
headers, lists the tools, calls get_case and get_thread (two pages), then
calls get_case as another agent (refused) and connects with a wrong token
(refused). Prints one JSON object with what it saw; exits non-zero only when
the client itself breaks.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def result_json(result):
    """What a tools/call gave: its error flag, its structured content and its text."""
    texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
    return {
        "isError": bool(result.is_error if hasattr(result, "is_error") else result.isError),
        "structured": getattr(result, "structured_content", None) if hasattr(result, "structured_content") else getattr(result, "structuredContent", None),
        "text": texts,
    }


def leaves(error):
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def session_for(url, agent, token, work, statuses=None):
    headers = {"X-Casebridge-Agent": agent, "Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        if statuses is not None:
            # The SDK reports a refused request without its HTTP status; note it here.
            async def note(response):
                statuses.append(response.status_code)

            http.event_hooks["response"].append(note)
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return await work(session, init)


async def main(settings):
    url, case_id = settings["url"], settings["caseId"]
    out = {}

    async def as_agent(session, init):
        out["serverName"] = init.server_info.name if hasattr(init, "server_info") else init.serverInfo.name
        tools = await session.list_tools()
        out["tools"] = sorted(tool.name for tool in tools.tools)
        out["getCase"] = result_json(await session.call_tool("get_case", {"caseId": case_id}))
        first = result_json(await session.call_tool("get_thread", {"caseId": case_id, "limit": 1}))
        out["threadFirst"] = first
        cursor = (first["structured"] or {}).get("nextCursor")
        if cursor is not None:
            out["threadNext"] = result_json(await session.call_tool("get_thread", {"caseId": case_id, "cursor": cursor, "limit": 50}))
        out["badLimit"] = result_json(await session.call_tool("get_thread", {"caseId": case_id, "limit": 0}))

    await session_for(url, settings["agent"], settings["token"], as_agent)

    async def as_other(session, init):
        out["foreign"] = result_json(await session.call_tool("get_case", {"caseId": case_id}))

    await session_for(url, settings["otherAgent"], settings["otherToken"], as_other)

    async def never(session, init):
        return None

    statuses = []
    try:
        await session_for(url, settings["agent"], "not-the-token-0123456789", never, statuses)
        out["badToken"] = "connected"
    except Exception as e:  # the SDK raises, inside exception groups, on a 401
        out["badToken"] = "refused: " + "; ".join(f"{type(leaf).__name__}: {leaf}"[:300] for leaf in leaves(e))

    out["badTokenStatuses"] = statuses
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
