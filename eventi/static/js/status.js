// The payment status page: one long poll until the order's status is final.
import { waitForPayment } from "./long-poll.js";

const root = document.getElementById("payment");
const announce = document.getElementById("announce");
const offlineNotice = document.getElementById("offline-notice");
const views = ["pending", "success", "failure", "unknown"];

// The server words the reason (`reasonText`), so a reload shows the same sentence; this is for older bodies.
const FALLBACK_REASON = "M-Pesa did not complete the payment: try again, or contact us with the order reference.";

function show(name, message) {
  for (const view of views) document.getElementById(`view-${view}`).hidden = view !== name;
  const heading = document.querySelector(`#view-${name} h1`);
  announce.textContent = message || heading.textContent;
  heading.focus();
}

function render(body) {
  if (body.paymentStatus === "completed") {
    document.getElementById("receipt").textContent = body.mpesaReceipt || "";
    show("success", `Payment received. M-Pesa receipt ${body.mpesaReceipt || ""}.`);
  } else {
    const reason = body.reasonText || FALLBACK_REASON;
    document.getElementById("failure-reason").textContent = reason;
    const heading = body.paymentStatus === "cancelled" ? "Payment cancelled." : "Payment not completed.";
    show("failure", `${heading} ${reason}`);
  }
}

// "offline" shows the notice; an answer from the server ("online") or a busy server ("retrying") hides it.
function onNetwork(state) {
  if (state === "offline" && offlineNotice.hidden) announce.textContent = offlineNotice.textContent;
  offlineNotice.hidden = state !== "offline";
}

let following = false, gaveUp = false;

async function follow() {
  if (following) return; // at most one wait in flight
  following = true;
  gaveUp = false;
  show("pending");
  try {
    const holdSeconds = Number(root.dataset.holdSeconds) || undefined; // the server's hold: the wait's deadline
    const result = await waitForPayment(root.dataset.waitUrl, { holdSeconds, onNetwork });
    if (result.final) render(result.body);
    else show("unknown");
  } catch (err) {
    gaveUp = !(err.status >= 400 && err.status < 500 && err.status !== 429); // not for an unknown order
    offlineNotice.hidden = true;
    document.getElementById("unknown-reason").textContent =
      "We could not reach the server to check your payment. Check your connection, then try again.";
    show("unknown");
  } finally {
    following = false;
  }
}

document.getElementById("check-again").addEventListener("click", follow);
// The wait rides out offline spells by itself; after it gave up on errors, the network coming back resumes it.
window.addEventListener("online", () => { if (gaveUp) follow(); });
if (root.dataset.status === "pending") follow();
