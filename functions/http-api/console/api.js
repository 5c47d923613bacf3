// The JSON API, called with the representative's token as a bearer.

const TOKEN = "casebridge.console.token";
const NAME = "casebridge.console.name";

export function session() {
  const token = sessionStorage.getItem(TOKEN);
  const name = sessionStorage.getItem(NAME);
  return token ? { token, name: name || "representative" } : null;
}

export function remember(token, name) {
  sessionStorage.setItem(TOKEN, token);
  sessionStorage.setItem(NAME, name);
}

export function forget() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(NAME);
}

/** An error answer of the API: its status, stable code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the JSON answer, rejects with an ApiError. */
export async function call(method, path, body, credentials = session()) {
  const headers = { Accept: "application/json" };
  if (credentials) {
    headers.Authorization = `Bearer ${credentials.token}`;
    headers["X-Casebridge-Representative"] = credentials.name;
  }
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "the API did not answer; check the connection and retry");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const code = data && typeof data.code === "string" ? data.code : `http_${response.status}`;
    const message = data && typeof data.message === "string" ? data.message : `the API answered ${response.status}`;
    throw new ApiError(response.status, code, message);
  }
  return data;
}

const path = (caseId) => `/cases/${encodeURIComponent(caseId)}`;

export const api = {
  drafts: () => call("GET", "/drafts"),
  escalations: () => call("GET", "/escalations"),
  caseView: (caseId) => call("GET", path(caseId)),
  timeline: (caseId) => call("GET", `${path(caseId)}/timeline`),
  sendDraft: (caseId, draftId, body) =>
    call("POST", `${path(caseId)}/drafts/${encodeURIComponent(draftId)}/send`, body === undefined ? {} : { body }),
  discardDraft: (caseId, draftId, reason) =>
    call("POST", `${path(caseId)}/drafts/${encodeURIComponent(draftId)}/discard`, reason ? { reason } : {}),
  sendBack: (caseId, draftId, note) =>
    call("POST", `${path(caseId)}/drafts/${encodeURIComponent(draftId)}/send-back`, { note }),
  takeOver: (caseId) => call("POST", `${path(caseId)}/take-over`),
  handBack: (caseId) => call("POST", `${path(caseId)}/hand-back`),
};
