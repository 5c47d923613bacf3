// The console: sign-in, hash routes (#/drafts, #/escalations, #/held,
// #/case/<id>), counts in the navigation, and the actions on a case.

import { api, ApiError, call, forget, remember, session } from "./api.js";
import { replace } from "./dom.js";
import { casePage, caseQueue, draftQueue, splitEscalations } from "./views.js";

const $ = (id) => document.getElementById(id);

function say(text) {
  $("status").textContent = text;
}

function alarm(text) {
  $("alert").textContent = text;
}

function describe(error) {
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  return "something went wrong in the console; reload the page";
}

function showSignIn(message) {
  $("nav").hidden = true;
  $("sign-in").hidden = false;
  replace($("view"));
  if (message) alarm(message);
  $("sign-in-name").focus();
}

async function signIn(event) {
  event.preventDefault();
  const name = $("sign-in-name").value.trim();
  const token = $("sign-in-token").value.trim();
  if (!name || !token) {
    alarm("Enter your name and the representative token.");
    return;
  }
  const button = $("sign-in-submit");
  button.disabled = true;
  try {
    await call("GET", "/drafts", undefined, { token, name });
    remember(token, name);
    $("sign-in-token").value = "";
    alarm("");
    // replaceState, unlike setting the hash, fires no hashchange (one route, not two).
    if (!location.hash || location.hash === "#") history.replaceState(null, "", "#/drafts");
    await route();
  } catch (error) {
    alarm(error instanceof ApiError && error.status === 401 ? "That token was refused. Check it and try again." : describe(error));
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  forget();
  alarm("");
  say("Signed out.");
  showSignIn();
}

/** The queues' counts in the navigation; returns the lists. */
async function counts() {
  const [drafts, escalations] = await Promise.all([api.drafts(), api.escalations()]);
  const { escalated, held } = splitEscalations(escalations.cases);
  $("count-drafts").textContent = String(drafts.drafts.length);
  $("count-escalations").textContent = String(escalated.length);
  $("count-held").textContent = String(held.length);
  return { drafts: drafts.drafts, escalated, held };
}

function current(which) {
  for (const id of ["nav-drafts", "nav-escalations", "nav-held"]) {
    if (id === which) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
}

function show(node, title) {
  replace($("view"), node);
  document.title = `${title} · casebridge console`;
  const heading = $("page-title");
  if (heading) heading.focus();
}

async function route() {
  const who = session();
  if (!who) {
    showSignIn();
    return;
  }
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("who").textContent = who.name;
  const hash = location.hash || "#/drafts";
  try {
    const match = hash.match(/^#\/case\/([^/]+)$/);
    if (match) {
      current(null);
      await showCase(decodeURIComponent(match[1]));
      await counts();
      return;
    }
    const lists = await counts();
    if (hash === "#/escalations") {
      current("nav-escalations");
      show(caseQueue("Escalated cases", lists.escalated, "No case is escalated."), "Escalated");
    } else if (hash === "#/held") {
      current("nav-held");
      show(caseQueue("Held cases (no agent)", lists.held, "No case is held without an agent."), "Held");
    } else {
      current("nav-drafts");
      show(draftQueue(lists.drafts), "Drafts");
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      forget();
      showSignIn("The API refused the token; sign in again.");
      return;
    }
    alarm(describe(error));
  }
}

/** Runs an action once: the button stays disabled while it runs. */
async function act(button, what, action, caseId) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  alarm("");
  say(`${what}…`);
  try {
    await action();
    say(`${what}: done.`);
  } catch (error) {
    say("");
    alarm(`${what} was refused: ${describe(error)}`);
  }
  try {
    await showCase(caseId, false);
    await counts();
  } catch (error) {
    alarm(describe(error));
  }
}

async function showCase(caseId, focus = true) {
  const [view, timeline] = await Promise.all([api.caseView(caseId), api.timeline(caseId)]);
  const handlers = {
    sendDraft: (draft, body, button) => {
      // Unchanged text is sent as the draft (not counted as edited); a
      // textarea gives line ends as \n whatever the draft had.
      const unchanged = body === draft.body.replace(/\r\n?/g, "\n");
      return act(button, "Sending the reply", () => api.sendDraft(caseId, draft.draftId, unchanged ? undefined : body), caseId);
    },
    discardDraft: (draft, reason, button) =>
      act(button, "Discarding the draft", () => api.discardDraft(caseId, draft.draftId, reason.trim()), caseId),
    sendBack: (draft, note, button) =>
      act(button, "Sending the draft back to the agent", () => api.sendBack(caseId, draft.draftId, note.trim()), caseId),
    takeOver: (button) => act(button, "Taking the case over", () => api.takeOver(caseId), caseId),
    handBack: (button) => act(button, "Handing the case back", () => api.handBack(caseId), caseId),
    reload: (button) => act(button, "Reloading the case", async () => {}, caseId),
  };
  const page = casePage(view, timeline.events, handlers);
  if (focus) show(page, `Case ${view.caseId}`);
  else replace($("view"), page);
}

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => {
    alarm("");
    say("");
    route();
  });
  route();
}

start();
