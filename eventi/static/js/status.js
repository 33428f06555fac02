// The payment status page: one long poll until the order's status is final, a countdown for the M-Pesa
// prompt, help after a while, and plain words when nothing is heard. Never asks for the PIN after the
// prompt expired. The server renders the first state (data-* on #payment); this keeps it current.
import { waitForPayment } from "./long-poll.js";

const root = document.getElementById("payment");
const announce = document.getElementById("announce");
const offlineNotice = document.getElementById("offline-notice");
const VIEW_OF = { waiting: "pending", unheard: "unknown", success: "success", failure: "failure", refund: "refund" };
// The same words as eventi/web/payment_page.py's TITLES.
const TITLES = { waiting: "Approve on your phone", unheard: "Waiting for M-Pesa", success: "Paid",
                 failure: "Payment not completed", refund: "Refund due" };

// The server words the reason (`reasonText`), so a reload shows the same sentence; this is for older bodies.
const FALLBACK_REASON = "M-Pesa did not complete the payment: try again, or contact us with the order reference.";
const UNHEARD = {
  expired: "The prompt on your phone has expired without an answer reaching us. If you approved it, your payment " +
           "shows here as soon as M-Pesa confirms it: do not pay again.",
  gaveUp: "We have not heard back about your payment yet. If you approved the prompt, your payment shows here as " +
          "soon as M-Pesa confirms it: do not pay again.",
  unreachable: "We could not reach the server to check your payment. Check your connection: we check again as soon " +
               "as you are back online. Do not pay again.",
};

// Prompt timings come as seconds from page load (not clock times): a phone whose clock is off counts right.
const loadedAt = performance.now();
const promptLeft = root.dataset.promptLeft === "" ? null : Number(root.dataset.promptLeft);
const helpAfter = Number(root.dataset.helpAfter || 0);
let state = root.dataset.state;
let waiting = null; // the AbortController of the wait in progress
let ticker = null;
let gaveUp = false; // the last wait ended on errors: the network coming back resumes it

function secondsLeft() {
  if (promptLeft === null) return null;
  return Math.max(0, Math.ceil(promptLeft - (performance.now() - loadedAt) / 1000));
}

function clock(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function show(next, { message, title, focus = true } = {}) {
  state = next;
  root.dataset.state = next;
  for (const [name, view] of Object.entries(VIEW_OF)) {
    const element = document.getElementById(`view-${view}`); // no waiting view once the prompt had expired
    if (element) element.hidden = name !== next;
  }
  document.title = `${title || TITLES[next]} · eventi`;
  const heading = document.querySelector(`#view-${VIEW_OF[next]} h1`);
  announce.textContent = message || heading.textContent;
  if (focus) heading.focus();
}

function unheard(why) {
  document.getElementById("unknown-reason").textContent = UNHEARD[why];
  show("unheard", { message: `We have not heard from M-Pesa yet. ${UNHEARD[why]}` });
}

function render(body) {
  stopCountdown();
  if (body.paymentStatus === "completed") {
    document.getElementById("receipt").textContent = body.mpesaReceipt || "";
    show("success", { message: `Payment received. M-Pesa receipt ${body.mpesaReceipt || ""}.` });
    return;
  }
  if (body.paymentStatus === "refund_needed") {
    refund(body);
    return;
  }
  const heading = body.paymentStatus === "cancelled" ? "Payment cancelled" : "Payment not completed";
  const reason = body.reasonText || FALLBACK_REASON;
  document.querySelector("#view-failure h1").textContent = heading;
  document.getElementById("failure-reason").textContent = reason;
  show("failure", { message: `${heading}. ${reason}`, title: heading });
}

// Paid after the order had failed, its tickets sold out since: the server's sentence says we refund.
function refund(body) {
  const heading = document.querySelector("#view-refund h1").textContent;
  const reason = body.reasonText || "";
  const receipt = body.mpesaReceipt || "";
  document.getElementById("refund-reason").textContent = reason;
  document.getElementById("refund-receipt").textContent = receipt;
  show("refund", { message: `${heading}. ${reason} M-Pesa receipt ${receipt}.` });
}

function tick() {
  const left = secondsLeft();
  const shown = document.getElementById("countdown-left");
  if (shown) shown.textContent = clock(left);
  if (left === 0) {
    stopCountdown();
    if (state === "waiting") unheard("expired"); // the wait goes on: a late answer still shows
  }
}

function startCountdown() {
  if (promptLeft === null || ticker !== null) return;
  ticker = setInterval(tick, 1000);
  tick();
}

function stopCountdown() {
  clearInterval(ticker);
  ticker = null;
}

function showHelpLater() {
  const help = document.getElementById("prompt-help");
  if (!help || !help.hidden) return;
  setTimeout(() => {
    if (state !== "waiting") return; // the outcome or "not heard yet" came first
    help.hidden = false;
    // Screen readers hear it too: the heading and its first tip.
    announce.textContent = `${help.querySelector("h2").textContent} ${help.querySelector("li").textContent}`;
  }, helpAfter * 1000);
}

function checking(busy) {
  document.getElementById("checking").hidden = !busy;
  document.getElementById("check-again").hidden = busy;
}

// "offline" shows the notice; an answer from the server ("online") or a busy server ("retrying") hides it.
function onNetwork(networkState) {
  if (networkState === "offline" && offlineNotice.hidden) announce.textContent = offlineNotice.textContent;
  offlineNotice.hidden = networkState !== "offline";
}

// Options for long-poll.js's waitForPayment: the server's hold (each hold's deadline) and the network hook.
function waitOptions(signal) {
  const holdSeconds = Number(root.dataset.holdSeconds) || undefined;
  return { signal, holdSeconds, onNetwork };
}

async function follow() {
  if (waiting) waiting.abort();
  const controller = new AbortController();
  waiting = controller;
  checking(true);
  gaveUp = false;
  // Past the prompt's life the page stays on "not heard yet": it never asks for the PIN again.
  if (secondsLeft() !== 0 && document.getElementById("view-pending")) show("waiting");
  startCountdown();
  try {
    const result = await waitForPayment(root.dataset.waitUrl, waitOptions(controller.signal));
    if (result.final) render(result.body);
    else unheard("gaveUp");
  } catch (err) {
    if (controller.signal.aborted) return;
    gaveUp = !(err.status >= 400 && err.status < 500 && err.status !== 429); // not for an unknown order
    offlineNotice.hidden = true;
    unheard("unreachable");
  }
  if (waiting === controller) {
    waiting = null;
    checking(false);
  }
}

// Back (or Forward) to a page kept in the back/forward cache: what it shows may be stale; the server knows.
window.addEventListener("pageshow", (event) => {
  if (event.persisted && (state === "waiting" || state === "unheard")) window.location.reload();
});

document.getElementById("check-again").addEventListener("click", follow);
// The wait rides out offline spells by itself; after it gave up on errors, the network coming back resumes it.
window.addEventListener("online", () => { if (gaveUp) follow(); });
if (root.dataset.status === "pending") {
  const liveNote = document.getElementById("live-note");
  if (liveNote) liveNote.hidden = false;
  showHelpLater();
  follow();
}

// The phone's push limit (eventi/push_limit.py) is reached: no "Try again" that would be refused until it can go.
const pushLimit = document.getElementById("push-limit");
if (pushLimit) {
  setTimeout(() => {
    pushLimit.hidden = true;
    document.getElementById("retry").hidden = false;
  }, Number(pushLimit.dataset.retryAfter) * 1000);
}
