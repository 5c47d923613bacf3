// casebridge HMAC v2, for an agent written in TypeScript on Node.js (node:crypto only).
// verify() checks a request casebridge sent to the agent; sign() makes the headers of a
// request the agent sends to casebridge. The string to sign is in docs/agents.md.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

const WINDOW_SECONDS = 300;

export function stringToSign(direction: "to-agent" | "to-casebridge", agent: string, method: string,
  pathAndQuery: string, timestamp: string, body: Buffer): string {
  const digest = createHash("sha256").update(body).digest("hex");
  return ["casebridge-v2", direction, agent, method.toUpperCase(), pathAndQuery, timestamp, digest].join("\n");
}

/** keys: key id -> secret. headers: names in lower case. pathAndQuery: the request target as received. */
export function verify(keys: Map<string, string>, agent: string, method: string, pathAndQuery: string,
  headers: Record<string, string>, body: Buffer, now: number = Date.now() / 1000): boolean {
  const timestamp = headers["x-casebridge-timestamp"] ?? "";
  const signature = headers["x-casebridge-signature"] ?? "";
  const secret = keys.get(headers["x-casebridge-key-id"] ?? "");
  if (secret === undefined || !/^[0-9]+$/.test(timestamp) || !signature.startsWith("v2=")) return false;
  if (Math.abs(now - Number(timestamp)) > WINDOW_SECONDS) return false;
  const message = stringToSign("to-agent", agent, method, pathAndQuery, timestamp, body);
  const expected = Buffer.from("v2=" + createHmac("sha256", secret).update(message).digest("hex"));
  const presented = Buffer.from(signature);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

/** The headers for a request from the agent to casebridge. */
export function sign(keyId: string, secret: string, agent: string, method: string, pathAndQuery: string,
  body: Buffer, now: number = Date.now() / 1000): Record<string, string> {
  const timestamp = String(Math.floor(now));
  const message = stringToSign("to-casebridge", agent, method, pathAndQuery, timestamp, body);
  return {
    "X-Casebridge-Agent": agent,
    "X-Casebridge-Key-Id": keyId,
    "X-Casebridge-Timestamp": timestamp,
    "X-Casebridge-Signature": "v2=" + createHmac("sha256", secret).update(message).digest("hex"),
  };
}
