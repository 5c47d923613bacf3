"""casebridge HMAC v2, for an agent written in Python (standard library only).

verify() checks a request casebridge sent to the agent; sign() makes the
headers of a request the agent sends to casebridge (a context read or an
async answer). The string to sign and the test vectors are in docs/agents.md.
"""
import hashlib
import hmac
import time

WINDOW_SECONDS = 300


def string_to_sign(direction: str, agent: str, method: str, path_and_query: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["casebridge-v2", direction, agent, method.upper(), path_and_query, timestamp, digest]).encode()


def verify(keys: dict, agent: str, method: str, path_and_query: str, headers: dict, body: bytes, now=None) -> bool:
    """keys: key id -> secret (bytes). headers: names in lower case.
    path_and_query: the request target exactly as received (path, and "?query")."""
    timestamp = headers.get("x-casebridge-timestamp", "")
    signature = headers.get("x-casebridge-signature", "")
    secret = keys.get(headers.get("x-casebridge-key-id", ""))
    if secret is None or not timestamp.isdigit() or not signature.startswith("v2="):
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        return False
    message = string_to_sign("to-agent", agent, method, path_and_query, timestamp, body)
    expected = "v2=" + hmac.new(secret, message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


def sign(key_id: str, secret: bytes, agent: str, method: str, path_and_query: str, body: bytes, now=None) -> dict:
    """The headers for a request from the agent to casebridge."""
    timestamp = str(int(time.time() if now is None else now))
    message = string_to_sign("to-casebridge", agent, method, path_and_query, timestamp, body)
    return {
        "X-Casebridge-Agent": agent,
        "X-Casebridge-Key-Id": key_id,
        "X-Casebridge-Timestamp": timestamp,
        "X-Casebridge-Signature": "v2=" + hmac.new(secret, message, hashlib.sha256).hexdigest(),
    }


if __name__ == "__main__":
    # Test driver: `verify FILE` exits 0 when the recorded request verifies,
    # `sign FILE` prints the headers for the request FILE describes, as JSON.
    import base64
    import json
    import sys

    command, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        case = json.load(f)
    body = base64.b64decode(case["body_base64"])
    keys = {case["key_id"]: case["secret"].encode()}
    if command == "verify":
        ok = verify(keys, case["agent"], case["method"], case["path_and_query"], case["headers"], body)
        sys.exit(0 if ok else 1)
    headers = sign(case["key_id"], case["secret"].encode(), case["agent"], case["method"], case["path_and_query"], body)
    print(json.dumps(headers))
