// Test driver (tests/tests/security.rs): `verify FILE` exits 0 when the recorded request
// verifies; `sign FILE` prints the headers for the request FILE describes, as JSON.
import { readFileSync } from "node:fs";
import { sign, verify } from "./casebridge_v2";

const [command, path] = process.argv.slice(2);
const c = JSON.parse(readFileSync(path, "utf8"));
const body = Buffer.from(c.body_base64, "base64");
if (command === "verify") {
  const ok = verify(new Map([[c.key_id, c.secret]]), c.agent, c.method, c.path_and_query, c.headers, body);
  process.exit(ok ? 0 : 1);
}
console.log(JSON.stringify(sign(c.key_id, c.secret, c.agent, c.method, c.path_and_query, body)));
