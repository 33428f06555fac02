// The checkout form: POST /api/orders, then on to the payment status page.
const form = document.getElementById("checkout");
const price = Number(form.dataset.ticketPrice);
const formError = document.getElementById("form-error");
const button = document.getElementById("pay");
const FIELD_FOR = { name: "name", email: "email", phone: "phone", amount: "tickets" };

const tickets = form.elements.tickets;
tickets.addEventListener("change", () => {
  document.getElementById("total").textContent = (price * Number(tickets.value)).toLocaleString("en-KE");
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
  event.preventDefault();
  clearErrors();
  const body = {
    eventId: form.dataset.eventId,
    amount: price * Number(tickets.value),
    phone: form.elements.phone.value.trim(),
    email: form.elements.email.value.trim(),
  };
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const missing = localErrors(body);
  if (Object.keys(missing).length) { showFieldErrors(missing); return; }

  button.disabled = true;
  button.textContent = "Sending the M-Pesa request…";
  try {
    const response = await fetch("/api/orders", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 201) {
      window.location.assign(`/orders/${encodeURIComponent(data.orderId)}/status?token=${encodeURIComponent(data.statusToken)}`);
      return;
    }
    if (data.error === "validation_error") showFieldErrors(data.details);
    else showFormError(data.message || `Something went wrong (HTTP ${response.status}). Please try again.`);
  } catch (err) {
    showFormError("We could not reach the server. Check your connection and try again.");
  }
  button.disabled = false;
  button.textContent = "Pay with M-Pesa";
});
