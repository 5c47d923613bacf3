// The console's pages, built from API answers with text nodes only.

import { age, caseHref, el, time } from "./dom.js";

const byOldest = (field) => (a, b) => Date.parse(a[field]) - Date.parse(b[field]);

/** Escalated cases that have an agent; held ones (no agent to hand back to) apart. */
export function splitEscalations(cases) {
  return {
    escalated: cases.filter((c) => c.agent),
    held: cases.filter((c) => !c.agent),
  };
}

function empty(text) {
  return el("p", { class: "empty" }, text);
}

export function draftQueue(drafts) {
  const rows = [...drafts].sort(byOldest("createdAt"));
  return el(
    "section",
    { "aria-labelledby": "page-title" },
    el("h1", { id: "page-title", tabindex: "-1" }, "Drafts waiting for review"),
    rows.length === 0
      ? empty("No draft is waiting for review.")
      : el(
          "table",
          { class: "queue", id: "draft-queue" },
          el("caption", {}, `${rows.length} draft(s), oldest first`),
          el(
            "thead",
            {},
            el("tr", {}, ["Case", "Subject", "Intent", "Kind", "Why a draft", "Waiting"].map((h) => el("th", { scope: "col" }, h))),
          ),
          el(
            "tbody",
            {},
            rows.map((d) =>
              el(
                "tr",
                { "data-case": d.caseId, "data-draft": d.draftId },
                el("td", {}, el("a", { href: caseHref(d.caseId) }, d.caseId)),
                el("td", {}, d.subject),
                el("td", {}, d.intent || "none"),
                el("td", {}, d.kind),
                el("td", {}, d.reason),
                el("td", {}, age(d.createdAt)),
              ),
            ),
          ),
        ),
  );
}

export function caseQueue(title, cases, none) {
  const rows = [...cases].sort(byOldest("since"));
  return el(
    "section",
    { "aria-labelledby": "page-title" },
    el("h1", { id: "page-title", tabindex: "-1" }, title),
    rows.length === 0
      ? empty(none)
      : el(
          "table",
          { class: "queue", id: "case-queue" },
          el("caption", {}, `${rows.length} case(s), oldest first`),
          el(
            "thead",
            {},
            el("tr", {}, ["Case", "Subject", "Customer", "Intent", "Reason", "Waiting"].map((h) => el("th", { scope: "col" }, h))),
          ),
          el(
            "tbody",
            {},
            rows.map((c) =>
              el(
                "tr",
                { "data-case": c.caseId },
                el("td", {}, el("a", { href: caseHref(c.caseId) }, c.caseId)),
                el("td", {}, c.subject),
                el("td", {}, c.customer),
                el("td", {}, c.intent || "none"),
                el("td", {}, c.reason || ""),
                el("td", {}, age(c.since)),
              ),
            ),
          ),
        ),
  );
}

function facts(view) {
  const confidence = typeof view.intentConfidence === "number" ? ` (confidence ${view.intentConfidence.toFixed(2)})` : "";
  const pairs = [
    ["Case", view.caseId],
    ["Status", view.status.replaceAll("_", " ")],
    ["Customer", view.customer.name ? `${view.customer.name} <${view.customer.email}>` : view.customer.email],
    ["Intent", `${view.intent || "none"}${confidence}`],
    ["Agent", view.agent || "none"],
    ["Workflow", String(view.workflow || "").replaceAll("_", " ")],
  ];
  if (view.escalation) pairs.push(["Escalated", `${view.escalation.reason} (queue ${view.escalation.queue})`]);
  return el("dl", { class: "facts" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function scores(view) {
  if (!view.intentScores || view.intentScores.length === 0) return null;
  return el(
    "table",
    { class: "scores" },
    el("caption", {}, "Intent scores, best first"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Intent"), el("th", { scope: "col" }, "Score"))),
    el(
      "tbody",
      {},
      view.intentScores.map((s) =>
        el("tr", {}, el("td", {}, s.intent + (s.secondRequest ? " (second request)" : "")), el("td", {}, Number(s.confidence).toFixed(2))),
      ),
    ),
  );
}

/** The representative's controls for the case: take over or hand back. */
function caseActions(view, handlers) {
  const held = view.status === "escalated";
  const closed = view.status === "closed";
  const buttons = [];
  if (!held && !closed) {
    buttons.push(el("button", { type: "button", id: "take-over", on: { click: (e) => handlers.takeOver(e.currentTarget) } }, "Take over"));
  }
  if (held && view.agent) {
    buttons.push(el("button", { type: "button", id: "hand-back", on: { click: (e) => handlers.handBack(e.currentTarget) } }, `Hand back to ${view.agent}`));
  }
  if (buttons.length === 0) return null;
  return el(
    "section",
    { "aria-labelledby": "actions-title", class: "actions" },
    el("h2", { id: "actions-title" }, "Case"),
    el("p", {}, held ? "The case is with representatives: agents are not called." : "Taking the case over stops its agent until you hand it back."),
    buttons,
  );
}

function pendingDraft(view, draft, handlers) {
  const id = draft.draftId.replace(/[^a-z0-9]/gi, "-");
  const bodyId = `draft-body-${id}`;
  const reasonId = `discard-reason-${id}`;
  const textarea = el("textarea", { id: bodyId, name: "body", rows: 12, value: draft.body, spellcheck: "true" });
  const reason = el("input", { id: reasonId, name: "reason", type: "text", maxlength: 500 });
  const noteId = `send-back-note-${id}`;
  const note = el("textarea", { id: noteId, name: "note", rows: 2, maxlength: 2000 });
  return el(
    "article",
    { class: "draft", "data-draft": draft.draftId },
    el("h3", {}, `${draft.kind} draft to ${draft.to.join(", ")}`),
    el("p", { class: "meta" }, `${draft.subject} · why a draft: ${draft.reason} · waiting ${age(draft.createdAt)}`),
    el("p", {}, el("label", { for: bodyId }, "Reply (edit before sending)"), el("br", {}), textarea),
    el(
      "p",
      {},
      el(
        "button",
        { type: "button", class: "primary send-draft", on: { click: (e) => handlers.sendDraft(draft, textarea.value, e.currentTarget) } },
        "Send this reply",
      ),
    ),
    el(
      "p",
      { class: "discard" },
      el("label", { for: reasonId }, "Reason for discarding"),
      el("br", {}),
      reason,
      " ",
      el("button", { type: "button", class: "discard-draft", on: { click: (e) => handlers.discardDraft(draft, reason.value, e.currentTarget) } }, "Discard"),
    ),
    el(
      "p",
      { class: "send-back" },
      el("label", { for: noteId }, "Note for the agent (what to change)"),
      el("br", {}),
      note,
      el("br", {}),
      el(
        "button",
        { type: "button", class: "send-back-draft", on: { click: (e) => handlers.sendBack(draft, note.value, e.currentTarget) } },
        "Send back to the agent",
      ),
    ),
  );
}

function drafts(view, handlers) {
  const pending = view.drafts.filter((d) => d.status === "pending_review");
  const done = view.drafts.filter((d) => d.status !== "pending_review");
  return el(
    "section",
    { "aria-labelledby": "drafts-title" },
    el("h2", { id: "drafts-title" }, "Drafts"),
    pending.length === 0 ? empty("No draft waits for review on this case.") : pending.map((d) => pendingDraft(view, d, handlers)),
    done.length === 0
      ? null
      : el(
          "ul",
          { class: "done-drafts" },
          done.map((d) => el("li", {}, `${d.draftId} (${d.kind}): ${d.status.replaceAll("_", " ")}${d.edited ? ", edited" : ""}`)),
        ),
  );
}

function mail(m, index) {
  const folded = m.fullText && m.fullText.trim() !== m.newText.trim();
  return el(
    "li",
    { class: `mail ${m.direction}` },
    el(
      "article",
      { "aria-labelledby": `mail-${index}` },
      el("h3", { id: `mail-${index}` }, `${m.direction === "inbound" ? "From" : "Sent by casebridge from"} ${m.from}`),
      el("p", { class: "meta" }, time(m.at), ` · to ${m.to.join(", ")} · ${m.subject}`),
      el("div", { class: "text new-text" }, m.newText),
      folded ? el("details", {}, el("summary", {}, "Quoted history and full text"), el("div", { class: "text full-text" }, m.fullText)) : null,
      m.attachments && m.attachments.length
        ? el(
            "ul",
            { class: "attachments", "aria-label": "Attachments" },
            m.attachments.map((a) => el("li", {}, `${a.name || "attachment"} (${a.contentType || a.content_type || "unknown type"}, ${a.size ?? "?"} bytes; not served here)`)),
          )
        : null,
    ),
  );
}

function thread(view) {
  return el(
    "section",
    { "aria-labelledby": "thread-title" },
    el("h2", { id: "thread-title" }, "Thread"),
    view.thread.length === 0 ? empty("No mail.") : el("ol", { class: "thread" }, view.thread.map(mail)),
  );
}

function turns(view) {
  return el(
    "section",
    { "aria-labelledby": "turns-title" },
    el("h2", { id: "turns-title" }, "Agent turns"),
    view.turns.length === 0
      ? empty("The agent has not been called on this case.")
      : el(
          "table",
          { class: "turns" },
          el("thead", {}, el("tr", {}, ["Turn", "Started", "Answer", "What the agent wrote", "Error"].map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            view.turns.map((t) =>
              el(
                "tr",
                {},
                el("td", {}, t.turnId),
                el("td", {}, time(t.startedAt)),
                el("td", {}, t.responseType || "no answer yet"),
                el("td", { class: "text" }, t.message || ""),
                el("td", {}, t.error || ""),
              ),
            ),
          ),
        ),
  );
}

function timeline(events) {
  return el(
    "section",
    { "aria-labelledby": "timeline-title" },
    el("h2", { id: "timeline-title" }, "Timeline"),
    el(
      "ol",
      { class: "timeline", id: "timeline" },
      events.map((e) => el("li", {}, time(e.at), " ", el("span", { class: "kind" }, e.kind.replaceAll("_", " ")), " ", el("span", { class: "detail" }, e.detail))),
    ),
  );
}

export function casePage(view, events, handlers) {
  return el(
    "section",
    { "aria-labelledby": "page-title", class: "case", "data-case": view.caseId, "data-status": view.status },
    el(
      "p",
      { class: "back" },
      el("a", { href: "#/drafts" }, "Back to the queues"),
      " ",
      el("button", { type: "button", id: "reload", on: { click: (e) => handlers.reload(e.currentTarget) } }, "Reload the case"),
    ),
    el("h1", { id: "page-title", tabindex: "-1" }, view.subject || "(no subject)"),
    el("div", { class: "columns" }, el("div", {}, facts(view), scores(view)), caseActions(view, handlers)),
    drafts(view, handlers),
    thread(view),
    turns(view),
    timeline(events),
  );
}
