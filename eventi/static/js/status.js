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
// Each sentence says whether the page is listening, and what to do when it is not (listening is honest).
const UNHEARD = {
  expired: "The prompt on your phone has expired without an answer reaching us. If you approved it, we keep " +
           "checking and your payment shows here when M-Pesa confirms it: do not pay again.",
  again: "We are checking your payment again. If you approved the prompt, do not pay again.",
  stopped: "We have stopped checking for now. If you approved the prompt, press Check again or come back to this " +
           "page later: it checks again when you return. Do not pay again.",
  unreachable: "We could not reach the server to check your payment. Check your connection: we try again every " +
               "minute, and as soon as you are back online. Do not pay again.",
  unreachableLater: "We could not reach the server to check your payment. Check your connection: we try again as " +
                    "soon as you are back online or return to this page. Do not pay again.",
};
// The heading of the "not heard" view when it is our connection, not M-Pesa, that failed.
const UNREACHABLE_HEADING = "Connection lost";
const RETRY_UNREACHABLE_MS = 60000;

// Prompt timings come as seconds from page load (not clock times): a phone whose clock is off counts right.
const loadedAt = performance.now();
const promptLeft = root.dataset.promptLeft === "" ? null : Number(root.dataset.promptLeft);
const helpAfter = Number(root.dataset.helpAfter || 0);
// How long the order can still change by itself (the prompt, then reconcile): the page listens that long.
const listenLeft = root.dataset.listenLeft === undefined || root.dataset.listenLeft === "" ? 0 : Number(root.dataset.listenLeft);
const unknownHeading = document.querySelector("#view-unknown h1");
const heardHeading = unknownHeading.innerHTML;
let state = root.dataset.state;
let waiting = null; // the AbortController of the wait in progress
let ticker = null;
let stopped = false; // the last wait ended without a final status: focus, a shown page or "online" checks again
let retryTimer = null;

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
  const manual = document.getElementById("manual-pay"); // Paybill details, when offered: once the prompt failed
  if (manual) manual.hidden = next !== "unheard" && next !== "failure";
  document.title = `${title || TITLES[next]} · eventi`;
  const heading = document.querySelector(`#view-${VIEW_OF[next]} h1`);
  announce.textContent = message || heading.textContent;
  if (focus) heading.focus();
}

function listenSeconds() {
  return Math.max(0, Math.floor(listenLeft - (performance.now() - loadedAt) / 1000));
}

function unheardWords(why) {
  const unreachable = why.startsWith("unreachable");
  if (unreachable) unknownHeading.textContent = UNREACHABLE_HEADING;
  else unknownHeading.innerHTML = heardHeading;
  document.getElementById("unknown-reason").textContent = UNHEARD[why];
  return unreachable ? UNREACHABLE_HEADING : null;
}

function unheard(why) {
  const title = unheardWords(why);
  show("unheard", { message: `${unknownHeading.textContent}. ${UNHEARD[why]}`, title });
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

// Options for long-poll.js's waitForPayment: the server's hold (each hold's deadline), holds back to back for
// the prompt's life, then the slow cadence for as long as the order can change, and the network hook.
function waitOptions(signal, listen) {
  const holdSeconds = Number(root.dataset.holdSeconds) || 60;
  const promptHolds = Math.ceil((secondsLeft() || 0) / holdSeconds) + 1; // "as soon as" holds while it may be answered
  const maxAttempts = listen > 0 ? Math.max(4, promptHolds) : 1; // past the window: one look per return
  return { signal, holdSeconds, onNetwork, maxAttempts, listenSeconds: listen };
}

async function follow() {
  if (waiting) waiting.abort();
  clearTimeout(retryTimer);
  const controller = new AbortController();
  waiting = controller;
  checking(true);
  stopped = false;
  // Past the prompt's life the page stays on "not heard yet": it never asks for the PIN again.
  if (secondsLeft() !== 0 && document.getElementById("view-pending")) show("waiting");
  startCountdown();
  const listen = listenSeconds();
  if (state === "unheard") unheardWords(listen > 0 ? "expired" : "again"); // the words say how it listens now
  try {
    const result = await waitForPayment(root.dataset.waitUrl, waitOptions(controller.signal, listen));
    if (result.final) render(result.body);
    else {
      stopped = true;
      unheard("stopped");
    }
  } catch (err) {
    if (controller.signal.aborted) return;
    stopped = !(err.status >= 400 && err.status < 500 && err.status !== 429); // not for an unknown order
    offlineNotice.hidden = true;
    const retry = stopped && listenSeconds() > 0;
    unheard(retry ? "unreachable" : "unreachableLater");
    if (retry) retryTimer = setTimeout(follow, RETRY_UNREACHABLE_MS);
  }
  if (waiting === controller) {
    waiting = null;
    checking(false);
  }
}

// After the page stopped listening, coming back to it checks again, without a click.
function checkOnReturn() {
  if (stopped && !waiting && document.visibilityState !== "hidden") follow();
}

// Back (or Forward) to a page kept in the back/forward cache: what it shows may be stale; the server knows.
window.addEventListener("pageshow", (event) => {
  if (event.persisted && (state === "waiting" || state === "unheard")) window.location.reload();
});

document.getElementById("check-again").addEventListener("click", follow);
// The wait rides out offline spells by itself; once it stopped, the network or the shopper coming back resumes it.
window.addEventListener("online", checkOnReturn);
window.addEventListener("focus", checkOnReturn);
document.addEventListener("visibilitychange", checkOnReturn);
if (root.dataset.status === "pending") {
  const liveNote = document.getElementById("live-note");
  if (liveNote) liveNote.hidden = false;
  showHelpLater();
  follow();
}

// The phone's push limit (eventi/storage/push_limit.py) is reached: no "Try again" that would be refused until it can go.
const pushLimit = document.getElementById("push-limit");
if (pushLimit) {
  setTimeout(() => {
    pushLimit.hidden = true;
    document.getElementById("retry").hidden = false;
  }, Number(pushLimit.dataset.retryAfter) * 1000);
}
