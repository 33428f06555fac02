// The checkout form: POST /api/orders (priced by the server), then on to the payment status page.
const form = document.getElementById("checkout");
const currency = form.dataset.currency;
const formError = document.getElementById("form-error");
const button = document.getElementById("pay");
const FIELD_FOR = { name: "name", email: "email", phone: "phone", quantity: "tickets", ticketTypeId: "ticket-type" };
const EARLIER = `eventi:order:${form.dataset.eventId}`;
const earlierBox = document.getElementById("earlier-order");

const ticketType = form.elements["ticket-type"];
const tickets = form.elements.tickets;

// One Idempotency-Key per form submission: a double tap, or a retry after a 5xx or a network error, sends
// the same key and body, so the server answers (or finishes) the first order instead of making a second
// one and a second M-Pesa prompt. Editing the form, or an answer that ends the attempt, starts a new
// submission with a new key.
let idempotencyKey = null;

// Whether an answer ends the attempt, and its key with it. A 4xx freed the key (or, 422, the key belongs to
// other details); a refused push (502 payment_provider_error) is settled: the order is stored as failed,
// nothing reached the phone, and the same key would only repeat that answer. After any other 5xx the order
// may still land, and 409 idempotency_key_in_use means the first request is still running: keep the key.
function attemptIsOver(status, error) {
  if (status === 409 && error === "idempotency_key_in_use") return false;
  if (status >= 500) return error === "payment_provider_error";
  return true;
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // works on plain http too, unlike randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function money(amount) {
  return amount.toLocaleString("en-KE");
}

function chosenType() {
  return ticketType.options[ticketType.selectedIndex];
}

// The total shown, and sent as expectedAmount: the server refuses the order (409 price_changed) when it is not
// what the order costs, so no push is for an amount the shopper did not see. Null when nothing can be bought.
function shownAmount() {
  const option = chosenType();
  const count = Number(tickets.value);
  return option && !option.disabled && count > 0 ? Number(option.dataset.price) * count : null;
}

// Until the script reaches its end (live), the form is the one without JavaScript: its button goes to the
// server's confirm step, and no total shows (it could not follow the choices).
let live = false;

// The phone the push limit refused (429 too_many_pushes) and until when: Pay for it waits, since the server
// would refuse it again; another number may pay at once.
let limited = null;

function limitedNow() {
  return limited !== null && limited.phone === form.elements.phone.value.trim() && Date.now() < limited.until;
}

function showTotal() {
  const option = chosenType();
  const amount = shownAmount();
  if (live) document.getElementById("live-total").hidden = amount === null;
  if (amount === null) {
    button.disabled = true; // nothing left to buy: never "0 × VIP", "Total: KES 0" and an enabled Pay
    return;
  }
  const price = Number(option.dataset.price);
  document.getElementById("line").textContent = `${tickets.value} × ${option.dataset.name} at ${currency} ${money(price)}`;
  document.getElementById("total").textContent = money(amount);
  if (!live) return;
  button.disabled = limitedNow();
  button.textContent = `Pay ${currency} ${money(amount)}`;
}

// A sold-out type is never the choice: the first type with tickets left is; none left, the form says so.
function ensureChoice() {
  const option = chosenType();
  if (option && !option.disabled && Number(option.dataset.most) > 0) return true;
  const open = Array.from(ticketType.options).find((o) => !o.disabled && Number(o.dataset.most) > 0);
  if (open) ticketType.value = open.value;
  document.getElementById("sold-out-now").hidden = Boolean(open);
  return Boolean(open);
}

function offerQuantities() {
  ensureChoice();
  const most = Number(chosenType().dataset.most);
  const keep = Math.max(1, Math.min(Number(tickets.value) || 1, most));
  tickets.replaceChildren(...Array.from({ length: most }, (_, i) => new Option(String(i + 1), String(i + 1))));
  if (most > 0) tickets.value = String(keep);
}

// What is left now (GET /api/events/<id>): each type's price, how many one order may take, sold out or not.
async function refreshChoices() {
  try {
    const response = await fetch(`/api/events/${encodeURIComponent(form.dataset.eventId)}`,
                                 { headers: { Accept: "application/json" }, cache: "no-store" });
    const event = response.ok ? await response.json() : { ticketTypes: [] }; // not known now: as they were
    for (const type of event.ticketTypes) {
      const option = Array.from(ticketType.options).find((o) => o.value === type.id);
      if (!option) continue;
      const most = Math.min(type.maxPerOrder, type.left);
      option.dataset.price = String(type.price);
      option.dataset.most = String(most);
      option.disabled = most === 0;
      const note = most === 0 ? " (sold out)" : type.left < type.maxPerOrder ? ` (only ${type.left} left)` : "";
      option.textContent = `${type.name} · ${currency} ${money(type.price)}${note}`;
    }
    const open = event.ticketTypes.filter((type) => Math.min(type.maxPerOrder, type.left) > 0);
    if (open.length) {
      document.getElementById("tickets-hint").textContent =
        `At most ${open.map((type) => `${Math.min(type.maxPerOrder, type.left)} ${type.name}`).join(" or ")} tickets per order.`;
    }
  } catch {
    // Offline: the choices stay as they were; the server still refuses what is not left.
  }
  offerQuantities();
  showTotal();
}

ticketType.addEventListener("change", () => { offerQuantities(); showTotal(); });
tickets.addEventListener("change", showTotal);
form.addEventListener("input", () => { idempotencyKey = null; });
form.elements.phone.addEventListener("input", () => { if (limited) showTotal(); });
form.addEventListener("change", () => { idempotencyKey = null; });

// The last order made from this tab for this event: coming back (Back after paying, or a new visit)
// shows that order while it is paid or still waiting for M-Pesa, not a fresh form that would make a
// second one. A failed or cancelled order is forgotten: the form is for trying again. So is a refund_needed
// one (paid after it had failed, its tickets sold out since): it bought nothing, so it is not "paid for";
// its payment page, a step back in the tab's history, says it is refunded.
function remembered() {
  try {
    const earlier = JSON.parse(sessionStorage.getItem(EARLIER));
    return earlier && earlier.orderId && earlier.token && earlier.url ? earlier : null;
  } catch {
    return null;
  }
}

function showEarlierOrder(earlier, body) {
  const paid = body.paymentStatus === "completed";
  const amount = `${currency} ${money(body.amount)}`;
  document.getElementById("earlier-order-title").textContent = paid
    ? "You have paid for this event" : "Your order for this event is waiting for M-Pesa";
  document.getElementById("earlier-order-text").textContent = paid
    ? `${amount} paid${body.mpesaReceipt ? `, M-Pesa receipt ${body.mpesaReceipt}` : ""}. Your tickets are on their way to your email.`
    : `${amount}: approve the prompt on your phone. Paying again would buy more tickets.`;
  document.getElementById("earlier-order-link").href = earlier.url;
  earlierBox.hidden = false;
  form.hidden = true;
  document.title = `Your order: ${document.querySelector("h1").textContent} · eventi`;
  document.getElementById("earlier-order-title").focus();
}

async function checkEarlierOrder() {
  const earlier = remembered();
  if (!earlier) return;
  try {
    const url = `/api/orders/${encodeURIComponent(earlier.orderId)}?token=${encodeURIComponent(earlier.token)}`;
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = response.ok ? await response.json() : null;
    if (body && (body.paymentStatus === "completed" || body.paymentStatus === "pending")) {
      showEarlierOrder(earlier, body);
      return;
    }
    if (body || response.status === 404) sessionStorage.removeItem(EARLIER); // failed, cancelled, refund_needed or gone
  } catch {
    // Offline: the form stays; the payment page the shopper came from still knows the order.
  }
}

const formTitle = document.title;

// The earlier order may have bought the last tickets of a type: the form shows what is left now.
document.getElementById("buy-more").addEventListener("click", async () => {
  await refreshChoices();
  document.title = formTitle;
  earlierBox.hidden = true;
  form.hidden = false;
  ticketType.focus();
});

// pageshow also fires when Back restores the page from the back/forward cache, where no script reruns.
// The form's values are restored then, not what was computed from them.
window.addEventListener("pageshow", () => {
  offerQuantities();
  showTotal();
  checkEarlierOrder();
});

function clearErrors() {
  formError.hidden = true;
  formError.textContent = "";
  for (const field of Object.values(FIELD_FOR)) {
    document.getElementById(`${field}-error`).textContent = "";
    form.elements[field].removeAttribute("aria-invalid");
  }
}

function showFieldErrors(details) {
  for (const [key, messages] of Object.entries(details || {})) {
    const field = FIELD_FOR[key];
    const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
    if (!field) { showFormError(text); continue; }
    document.getElementById(`${field}-error`).textContent = text;
    form.elements[field].setAttribute("aria-invalid", "true");
  }
  const first = form.querySelector('[aria-invalid="true"]'); // first in the page, not in the answer
  if (first) first.focus();
}

function showFormError(message) {
  formError.textContent = message;
  formError.hidden = false;
  formError.focus();
}

function localErrors(body) {
  const errors = {};
  if (!body.email) errors.email = ["Enter your email address."];
  if (!body.phone) errors.phone = ["Enter the M-Pesa phone number to charge."];
  return errors;
}

form.addEventListener("submit", async (event) => {
  if (!live) return; // the script stopped before it could show the total: the form's own path, the confirm step
  event.preventDefault();
  clearErrors();
  const body = {
    eventId: form.dataset.eventId,
    ticketTypeId: ticketType.value,
    quantity: Number(tickets.value),
    expectedAmount: shownAmount(),
    phone: form.elements.phone.value.trim(),
    email: form.elements.email.value.trim(),
  };
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const missing = localErrors(body);
  if (Object.keys(missing).length) { showFieldErrors(missing); return; }

  if (body.expectedAmount === null) return; // sold out: nothing to pay for
  idempotencyKey = idempotencyKey || newKey();
  button.disabled = true;
  button.textContent = "Sending the M-Pesa request…";
  try {
    const response = await fetch("/api/orders", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": idempotencyKey },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 201) {
      const page = `/orders/${encodeURIComponent(data.orderId)}/status?token=${encodeURIComponent(data.statusToken)}`;
      sessionStorage.setItem(EARLIER, JSON.stringify({ orderId: data.orderId, token: data.statusToken, url: page }));
      window.location.assign(page);
      return;
    }
    if (attemptIsOver(response.status, data.error)) idempotencyKey = null;
    if (data.error === "sold_out" || data.error === "price_changed") await refreshChoices(); // what is left, priced now
    if (data.error === "validation_error") showFieldErrors(data.details);
    else showFormError(refusal(response, data));
  } catch (err) {
    // The order may have been made: the retry sends the same key, so it cannot be made twice.
    showFormError("We could not reach the server. Check your connection and try again.");
  }
  showTotal();
});

// The sentence for a refused order: the server's, with the clock time of the next try after the push limit.
function refusal(response, data) {
  const message = data.message || `Something went wrong (HTTP ${response.status}). Please try again.`;
  const wait = Number(response.headers.get("Retry-After"));
  if (data.error === "price_changed") return `${message} It is now ${currency} ${money(data.amount)}.`;
  if (data.error !== "too_many_pushes" || !wait) return message;
  limited = { phone: form.elements.phone.value.trim(), until: Date.now() + wait * 1000 };
  setTimeout(showTotal, wait * 1000);
  const at = new Date(Date.now() + wait * 1000).toLocaleTimeString("en-GB", {
    hour: "2-digit", minute: "2-digit", timeZone: "Africa/Nairobi" });
  return `${message.replace(/\.$/, "")} (after ${at}).`;
}

// The one-step flow, with its live total and "Pay KES …", only now that every handler above is in place.
document.getElementById("total-next").hidden = true;
live = true;
showTotal();
